using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

using SecureFed.Crypto;

namespace SecureFed.Federation.Internal;

/// <summary>Strict reader of <c>federation.json</c>: every problem names the source and the JSON field.</summary>
internal sealed class ManifestReader(string source)
{
    public FederationManifest Read(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            // The whole document, not a field: "field '$'" meant nothing to an operator (CLI crash hunt, session 56).
            throw new InvalidDataException(
                $"{source}: the file is a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not the JSON object of a federation manifest; the file is damaged or not a federation.json.");
        }

        if (!root.TryGetProperty("format", out _))
        {
            // e.g. a kit's aggregator.json or agent.json given as --manifest.
            throw new InvalidDataException($"{source}: not a federation manifest (no 'format' field; expected the federation.json that 'securefed provision' writes).");
        }

        string format = String(root, "format", "format");
        if (format != FederationManifest.FormatVersion)
        {
            throw Fail("format", $"is '{format}', expected '{FederationManifest.FormatVersion}'");
        }

        string federation = String(root, "federation", "federation");
        if (Names.Problem(federation, "federation", stored: true) is { } problem)
        {
            throw Fail("federation", "is invalid: " + problem);
        }

        string createdText = String(root, "createdUtc", "createdUtc");
        if (!DateTimeOffset.TryParseExact(createdText, FederationManifest.CreatedUtcFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out DateTimeOffset created))
        {
            throw Fail("createdUtc", $"'{createdText}' is not a UTC time in the form YYYY-MM-DDThh:mm:ssZ (e.g. 2026-01-31T09:30:00Z)");
        }

        X509Certificate2 ca = ReadCa(String(root, "caCertificate", "caCertificate"));

        JsonElement aggregatorElement = Property(root, "aggregator", "aggregator", JsonValueKind.Object);
        string aggregatorName = String(aggregatorElement, "name", "aggregator.name");
        if (aggregatorName != KitFiles.AggregatorName)
        {
            throw Fail("aggregator.name", $"is '{aggregatorName}', expected '{KitFiles.AggregatorName}'");
        }

        string host = String(aggregatorElement, "host", "aggregator.host");
        if (Uri.CheckHostName(host) == UriHostNameType.Unknown)
        {
            throw Fail("aggregator.host", $"'{host}' is not a valid host name or IP address");
        }

        PartyInfo aggregator = ReadParty(aggregatorElement, aggregatorName, "aggregator");

        JsonElement sitesElement = Property(root, "sites", "sites", JsonValueKind.Array);
        var sites = new List<PartyInfo>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var thumbprints = new HashSet<string>(StringComparer.Ordinal) { aggregator.CertificateThumbprint };

        // Keyed by the decoded key re-encoded, so two spellings of one key (whitespace, padding bits) still collide.
        // A key shared by two parties would let one sign as the other: the aggregator could pose as a site in the
        // consistency round, or one site could answer for another whose kit it never held.
        var identityKeys = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [Convert.ToBase64String(aggregator.IdentityPublicKey)] = aggregator.Name,
        };
        int index = 0;
        foreach (JsonElement siteElement in sitesElement.EnumerateArray())
        {
            string field = $"sites[{index}]";
            if (siteElement.ValueKind != JsonValueKind.Object)
            {
                throw Fail(field, "must be a JSON object");
            }

            string name = String(siteElement, "name", field + ".name");
            if (Names.Problem(name, "site", stored: true) is { } siteProblem)
            {
                throw Fail(field + ".name", "is invalid: " + siteProblem);
            }

            if (name == Names.Aggregator)
            {
                throw Fail(field + ".name", "'aggregator' is reserved for the aggregator");
            }

            if (!names.Add(name))
            {
                throw Fail(field + ".name", $"site '{name}' is listed twice");
            }

            PartyInfo site = ReadParty(siteElement, name, field);
            if (!thumbprints.Add(site.CertificateThumbprint))
            {
                throw Fail(field + ".certificateSha256", "the same certificate is listed for two parties");
            }

            string identityKey = Convert.ToBase64String(site.IdentityPublicKey);
            if (identityKeys.TryGetValue(identityKey, out string? holder))
            {
                throw Fail(field + ".identityPublicKey", $"is already listed for '{holder}'");
            }

            identityKeys.Add(identityKey, name);

            sites.Add(site);
            index++;
        }

        JsonElement revokedElement = Property(root, "revoked", "revoked", JsonValueKind.Array);
        var revoked = new List<string>();
        var revokedNames = new HashSet<string>(StringComparer.Ordinal);
        index = 0;
        foreach (JsonElement entry in revokedElement.EnumerateArray())
        {
            string field = $"revoked[{index++}]";
            if (entry.ValueKind != JsonValueKind.String)
            {
                throw Fail(field, "must be a site name (string)");
            }

            string name = entry.GetString()!;
            if (!names.Contains(name))
            {
                throw Fail(field, $"'{name}' is not a site of this federation");
            }

            if (!revokedNames.Add(name))
            {
                // Harmless to the set it becomes, but the writer never lists a name twice: the file was edited by hand.
                throw Fail(field, $"'{name}' is listed twice");
            }

            revoked.Add(name);
        }

        return new FederationManifest(federation, created, ca, host, aggregator, sites, revoked);
    }

    private X509Certificate2 ReadCa(string pem)
    {
        X509Certificate2 ca;
        try
        {
            ca = X509Certificate2.CreateFromPem(pem);
        }
        catch (CryptographicException ex)
        {
            throw Fail("caCertificate", $"is not a PEM certificate ({ex.Message})");
        }

        X509BasicConstraintsExtension? basic;
        try
        {
            basic = ca.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault();
            _ = basic?.CertificateAuthority; // decoded lazily: a corrupt extension throws here (found by the reliability fuzz tests)
        }
        catch (CryptographicException ex)
        {
            ca.Dispose();
            throw Fail("caCertificate", $"has a corrupt extension ({ex.Message})");
        }

        if (basic is null || !basic.CertificateAuthority)
        {
            ca.Dispose();
            throw Fail("caCertificate", "is not a CA certificate (basicConstraints CA:TRUE missing)");
        }

        return ca;
    }

    private PartyInfo ReadParty(JsonElement element, string name, string field)
    {
        string thumbprint = String(element, "certificateSha256", field + ".certificateSha256");
        if (thumbprint.Length != 64 || !thumbprint.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f')))
        {
            throw Fail(field + ".certificateSha256", "must be 64 lowercase hex characters (SHA-256)");
        }

        string keyText = String(element, "identityPublicKey", field + ".identityPublicKey");
        byte[] key = new byte[Ed25519.PublicKeySize + 3];
        if (!Convert.TryFromBase64String(keyText, key, out int written) || written != Ed25519.PublicKeySize)
        {
            throw Fail(field + ".identityPublicKey", $"must be a base64 {Ed25519.PublicKeySize}-byte Ed25519 public key");
        }

        return new PartyInfo(name, thumbprint, key.AsSpan(0, Ed25519.PublicKeySize).ToArray());
    }

    private JsonElement Property(JsonElement parent, string name, string field, JsonValueKind kind)
    {
        if (!parent.TryGetProperty(name, out JsonElement value))
        {
            throw Fail(field, "is missing");
        }

        if (value.ValueKind != kind)
        {
            throw Fail(field, $"must be a JSON {kind.ToString().ToLowerInvariant()}, found {value.ValueKind.ToString().ToLowerInvariant()}");
        }

        return value;
    }

    private string String(JsonElement parent, string name, string field) =>
        Property(parent, name, field, JsonValueKind.String).GetString()!;

    private InvalidDataException Fail(string field, string problem) =>
        new($"{source}: field '{field}' {problem}{(problem.EndsWith('.') ? string.Empty : ".")}");
}
