using System.Text.Json.Nodes;

namespace SecureFed.Federation.Tests;

public sealed class ManifestTests(ProvisionedFederation federation) : IClassFixture<ProvisionedFederation>
{
    private string Json => File.ReadAllText(federation.Result.ManifestPath);

    private static string Mutate(string json, Action<JsonObject> change)
    {
        JsonObject root = JsonNode.Parse(json)!.AsObject();
        change(root);
        return root.ToJsonString();
    }

    [Fact]
    public void ToJson_LoadedManifest_RoundTripsByteForByte()
    {
        FederationManifest manifest = FederationManifest.Load(federation.Result.ManifestPath);

        Assert.Equal(Json, manifest.ToJson());
    }

    [Fact]
    public void Load_NotJson_InvalidDataExceptionNamingTheFile()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("federation.json");
        File.WriteAllText(path, Json[..(Json.Length / 2)]);

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Load(path));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Contains("not valid JSON", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[]", "array")]
    [InlineData("7", "number")]
    [InlineData("null", "null")]
    public void Parse_NotAnObject_SaysTheFileIsNotAManifest(string json, string kind)
    {
        // CLI crash hunt (session 56): "field '$' must be a JSON object" named a field an operator never sees.
        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));
        Assert.Equal($"m.json: the file is a JSON {kind}, not the JSON object of a federation manifest; the file is damaged or not a federation.json.", ex.Message);
    }

    [Theory]
    [InlineData("federation")]
    [InlineData("caCertificate")]
    [InlineData("aggregator")]
    [InlineData("sites")]
    [InlineData("revoked")]
    public void Parse_MissingTopLevelField_NamesTheField(string field)
    {
        string json = Mutate(Json, root => root.Remove(field));

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Equal($"m.json: field '{field}' is missing.", ex.Message);
    }

    [Theory]
    [InlineData("{\"SecureFed\": {\"Listen\": \"https://0.0.0.0:7443\"}}")]
    [InlineData("{}")]
    public void Parse_NoFormatField_SaysItIsNotAFederationManifest(string json)
    {
        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "aggregator.json"));

        Assert.Equal("aggregator.json: not a federation manifest (no 'format' field; expected the federation.json that 'securefed provision' writes).", ex.Message);
    }

    /// <summary>
    /// A manifest provisioned before session 58, when a name could start or end with '-', still loads (the rule binds new
    /// names, at provisioning and add-site; diff review: refusing it on load stopped an existing federation at start-up).
    /// </summary>
    [Fact]
    public void Parse_StoredSiteNameEndingWithADash_StillLoads()
    {
        string json = Mutate(Json, root => root["sites"]![0]!["name"] = "lab-");

        Assert.Contains(FederationManifest.Parse(json).Sites, s => s.Name == "lab-");
    }

    [Fact]
    public void Parse_MissingSiteKey_NamesTheIndexedField()
    {
        string json = Mutate(Json, root => root["sites"]![1]!.AsObject().Remove("identityPublicKey"));

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains("'sites[1].identityPublicKey' is missing", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("certificateSha256", "abc", "64 lowercase hex")]
    [InlineData("identityPublicKey", "AAAA", "32-byte Ed25519")]
    [InlineData("name", "Bad_Name", "is invalid")]
    [InlineData("name", "aggregator", "reserved")]
    public void Parse_TamperedSiteField_NamesTheFieldAndProblem(string field, string value, string problem)
    {
        string json = Mutate(Json, root => root["sites"]![0]![field] = value);

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains($"'sites[0].{field}'", ex.Message, StringComparison.Ordinal);
        Assert.Contains(problem, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_DuplicateSite_Refused()
    {
        string json = Mutate(Json, root => root["sites"]![1]!["name"] = (string?)root["sites"]![0]!["name"]);

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains("listed twice", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_SiteIdentityKeyOfAnotherSite_RefusedNamingTheOwner()
    {
        string owner = (string)JsonNode.Parse(Json)!["sites"]![0]!["name"]!;
        string json = Mutate(Json, root => root["sites"]![1]!["identityPublicKey"] = (string?)root["sites"]![0]!["identityPublicKey"]);

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains("m.json: field 'sites[1].identityPublicKey' is already listed for '" + owner + "'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_SiteIdentityKeyOfTheAggregator_RefusedNamingTheAggregator()
    {
        string json = Mutate(Json, root => root["sites"]![0]!["identityPublicKey"] = (string?)root["aggregator"]!["identityPublicKey"]);

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains("field 'sites[0].identityPublicKey' is already listed for 'aggregator'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_RevokedGivenTwiceLastOneEmpty_RefusedNotReadAsUnrevoked()
    {
        string site = (string)JsonNode.Parse(Json)!["sites"]![0]!["name"]!;
        string body = Mutate(Json, root => root.Remove("revoked"));
        string json = "{\"revoked\": [\"" + site + "\"]," + body[1..^1] + ", \"revoked\": []}";

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.StartsWith("m.json: a JSON property is given twice (Duplicate property 'revoked'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_DuplicatePropertyInASite_RefusedNamingTheFile()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("federation.json");
        string name = (string)JsonNode.Parse(Json)!["sites"]![0]!["name"]!;
        File.WriteAllText(path, Json.Replace("\"name\": \"" + name + "\"", "\"name\": \"" + name + "\", \"name\": \"" + name + "\"", StringComparison.Ordinal));

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Load(path));

        Assert.StartsWith(path + ": a JSON property is given twice (Duplicate property 'name'", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2026-01-31T09:30:00+02:00")]
    [InlineData("2026-01-31 09:30:00")]
    [InlineData("01/31/2026 09:30:00")]
    [InlineData("2026-01-31T09:30:00.5Z")]
    [InlineData("2026-01-31")]
    public void Parse_CreatedUtcNotInTheWritersForm_RefusedNamingTheForm(string created)
    {
        string json = Mutate(Json, root => root["createdUtc"] = created);

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains($"m.json: field 'createdUtc' '{created}' is not a UTC time in the form YYYY-MM-DDThh:mm:ssZ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_RevokedNameListedTwice_Refused()
    {
        string site = (string)JsonNode.Parse(Json)!["sites"]![0]!["name"]!;
        string json = Mutate(Json, root =>
        {
            root["revoked"]!.AsArray().Add(site);
            root["revoked"]!.AsArray().Add(site);
        });

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains($"m.json: field 'revoked[1]' '{site}' is listed twice", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_CaCertificateTampered_Refused()
    {
        string json = Mutate(Json, root => root["caCertificate"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains("'caCertificate'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_LeafCertificateAsCa_Refused()
    {
        string leaf = File.ReadAllText(Path.Combine(federation.Root, "aggregator", KitFiles.TlsCertificate));
        string json = Mutate(Json, root => root["caCertificate"] = leaf);

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains("not a CA certificate", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_RevokedNameNotASite_Refused()
    {
        string json = Mutate(Json, root => root["revoked"]!.AsArray().Add("nobody"));

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains("'revoked[0]'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'nobody'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_WrongFieldType_NamesExpectedType()
    {
        string json = Mutate(Json, root => root["sites"] = "site-de");

        var ex = Assert.Throws<InvalidDataException>(() => FederationManifest.Parse(json, "m.json"));

        Assert.Contains("'sites' must be a JSON array", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WithRevoked_SaveAndLoad_PersistsRevocationAndKeepsOriginal()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("federation.json");
        FederationManifest original = FederationManifest.Parse(Json);

        FederationManifest revoked = original.WithRevoked("site-jp").WithRevoked("site-de").WithRevoked("site-jp");
        revoked.Save(path);
        FederationManifest loaded = FederationManifest.Load(path);

        Assert.Empty(original.Revoked);
        Assert.Equal(["site-de", "site-jp"], loaded.Revoked.Order(StringComparer.Ordinal));
        Assert.True(loaded.IsRevoked("site-jp"));
        Assert.False(loaded.IsRevoked("site-fr"));
        Assert.Equal(original.Sites.Select(s => s.CertificateThumbprint), loaded.Sites.Select(s => s.CertificateThumbprint));
    }

    [Fact]
    public void WithRevoked_UnknownSite_ThrowsArgumentException()
    {
        FederationManifest manifest = FederationManifest.Parse(Json);

        var ex = Assert.Throws<ArgumentException>(() => manifest.WithRevoked("site-xx"));

        Assert.Contains("unknown site 'site-xx'", ex.Message, StringComparison.Ordinal);
    }
}
