using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

using Microsoft.Extensions.Time.Testing;

using SecureFed.Crypto;

namespace SecureFed.Federation.Tests;

public sealed class ProvisioningTests(ProvisionedFederation federation) : IClassFixture<ProvisionedFederation>
{
    private static readonly string[] s_kitFiles =
        [KitFiles.TlsCertificate, KitFiles.TlsKey, KitFiles.IdentityKey, KitFiles.CaCertificate, KitFiles.Manifest];

    [Fact]
    public void Provision_ThreeSites_WritesManifestCaAndOneKitPerParty()
    {
        string root = federation.Root;
        Assert.True(File.Exists(Path.Combine(root, KitFiles.Manifest)));
        Assert.True(File.Exists(Path.Combine(root, "ca", "ca.crt")));
        Assert.True(File.Exists(Path.Combine(root, "ca", "ca.key")));
        foreach (string file in s_kitFiles.Append(KitFiles.AggregatorConfig))
        {
            Assert.True(File.Exists(Path.Combine(root, "aggregator", file)), $"aggregator/{file} missing");
        }

        foreach (string site in new[] { "site-de", "site-fr", "site-jp" })
        {
            foreach (string file in s_kitFiles.Append(KitFiles.AgentConfig))
            {
                Assert.True(File.Exists(Path.Combine(root, "sites", site, file)), $"sites/{site}/{file} missing");
            }
        }

        Assert.False(File.Exists(Path.Combine(root, "aggregator", KitFiles.CaKey)));
        Assert.All(federation.Result.Files, f => Assert.True(File.Exists(f), f));
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(root)!, ".*provisioning*"));
    }

    [Fact]
    public void Provision_PrivateKeys_AreOwnerOnly()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // Unix file modes only.
        }

        string[] secrets =
        [
            Path.Combine(federation.Root, "ca", KitFiles.CaKey),
            Path.Combine(federation.Root, "aggregator", KitFiles.TlsKey),
            Path.Combine(federation.Root, "aggregator", KitFiles.IdentityKey),
            Path.Combine(federation.Root, "sites", "site-fr", KitFiles.TlsKey),
            Path.Combine(federation.Root, "sites", "site-fr", KitFiles.IdentityKey),
        ];
        foreach (string secret in secrets)
        {
            Assert.Equal(AtomicFile.SecretFileMode, File.GetUnixFileMode(secret));
        }
    }

    [Fact]
    public void Provision_CaCertificate_IsSelfSignedP256CaForCertSigning()
    {
        using X509Certificate2 ca = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, "ca", "ca.crt"));
        Assert.Equal(ca.Subject, ca.Issuer);
        X509BasicConstraintsExtension basic = ca.Extensions.OfType<X509BasicConstraintsExtension>().Single();
        Assert.True(basic.CertificateAuthority);
        Assert.True(ca.Extensions.OfType<X509KeyUsageExtension>().Single().KeyUsages.HasFlag(X509KeyUsageFlags.KeyCertSign));
        using ECDsa? key = ca.GetECDsaPublicKey();
        Assert.NotNull(key);
        Assert.Equal(256, key.KeySize);

        using ECDsa caKey = ECDsa.Create();
        caKey.ImportFromPem(File.ReadAllText(Path.Combine(federation.Root, "ca", "ca.key")));
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), caKey.ExportSubjectPublicKeyInfo());
    }

    [Fact]
    public void Provision_ServerCertificate_HasHostLocalhostLoopbackServerAuthAndClientAuthForTheCluster()
    {
        using X509Certificate2 cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, "aggregator", "tls.crt"));
        Assert.Equal("aggregator", cert.GetNameInfo(X509NameType.SimpleName, false));
        X509SubjectAlternativeNameExtension san = cert.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Contains("agg.example.org", san.EnumerateDnsNames());
        Assert.Contains("localhost", san.EnumerateDnsNames());
        Assert.Contains(System.Net.IPAddress.Loopback, san.EnumerateIPAddresses());
        X509EnhancedKeyUsageExtension eku = cert.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single();
        Assert.Equal([PeerTrust.ServerAuthOid, PeerTrust.ClientAuthOid], eku.EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value));
        Assert.True(cert.MatchesHostname("agg.example.org"));
        Assert.True(cert.MatchesHostname("localhost"));
    }

    [Fact]
    public void Provision_SiteCertificate_HasSiteUriAndClientAuth()
    {
        using X509Certificate2 cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, "sites", "site-jp", "tls.crt"));
        Assert.Equal("site-jp", cert.GetNameInfo(X509NameType.SimpleName, false));
        X509Extension san = cert.Extensions.Single(e => e.Oid?.Value == "2.5.29.17");
        string formatted = san.Format(false);
        Assert.Contains("securefed://test-fed/site/site-jp", formatted, StringComparison.Ordinal);
        X509EnhancedKeyUsageExtension eku = cert.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single();
        Assert.Equal([PeerTrust.ClientAuthOid], eku.EnhancedKeyUsages.Cast<Oid>().Select(o => o.Value));
    }

    [Fact]
    public void Provision_PartyCertificates_ChainToTheFederationCa()
    {
        using X509Certificate2 ca = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, "ca", "ca.crt"));
        foreach (string party in new[] { "aggregator", "sites/site-de", "sites/site-fr", "sites/site-jp" })
        {
            using X509Certificate2 cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, party, "tls.crt"));
            Assert.True(PeerTrust.ValidateChain(cert, ca, out string? error), $"{party}: {error}");
            Assert.Null(error);
        }
    }

    [Fact]
    public void Provision_PartyCertificates_FailAgainstAnotherFederationsCa()
    {
        using var other = new TempDirectory();
        ProvisionResult foreign = FederationProvisioner.Provision(new ProvisionRequest(other.Combine("other"), "test-fed", ["site-de"], "agg.example.org"));
        using X509Certificate2 cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, "sites", "site-de", "tls.crt"));

        bool valid = PeerTrust.ValidateChain(cert, foreign.Manifest.CaCertificate, out string? error);
        bool validNoRevocationCheck = PeerTrust.ValidateChain(cert, foreign.Manifest.CaCertificate, revocationMode: null, out string? error2);

        Assert.False(valid);
        Assert.False(validNoRevocationCheck);
        Assert.Equal(PeerTrust.NotIssuedByFederationCa, error);
        Assert.Equal(error, error2);
    }

    [Fact]
    public void Provision_Manifest_ListsThumbprintsAndIdentityKeysOfTheKits()
    {
        FederationManifest manifest = FederationManifest.Load(federation.Result.ManifestPath);
        Assert.Equal("test-fed", manifest.FederationName);
        Assert.Equal("agg.example.org", manifest.AggregatorHost);
        Assert.Equal(["site-de", "site-fr", "site-jp"], manifest.Sites.Select(s => s.Name));
        Assert.Empty(manifest.Revoked);
        foreach (string site in new[] { "site-de", "site-fr", "site-jp" })
        {
            string kit = Path.Combine(federation.Root, "sites", site);
            using X509Certificate2 cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(kit, "tls.crt"));
            using Ed25519PrivateKey identity = IdentityKeyFile.Read(Path.Combine(kit, "identity.key"));
            Assert.True(manifest.TryGetSite(site, out PartyInfo info));
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(cert.RawData)), info.CertificateThumbprint);
            Assert.Equal(identity.PublicKey, info.IdentityPublicKey);
        }

        Assert.Equal(File.ReadAllText(federation.Result.ManifestPath), File.ReadAllText(Path.Combine(federation.Root, "sites", "site-de", KitFiles.Manifest)));
    }

    [Fact]
    public void Provision_IdentityKeyFile_HasTheSecureFedPemLabel()
    {
        string text = File.ReadAllText(Path.Combine(federation.Root, "aggregator", "identity.key"));
        Assert.StartsWith("-----BEGIN SECUREFED ED25519 PRIVATE KEY-----", text, StringComparison.Ordinal);
        Assert.Contains("-----END SECUREFED ED25519 PRIVATE KEY-----", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Provision_ConfigTemplates_HaveTheSecureFedSection()
    {
        using JsonDocument aggregator = JsonDocument.Parse(File.ReadAllText(Path.Combine(federation.Root, "aggregator", KitFiles.AggregatorConfig)));
        JsonElement a = aggregator.RootElement.GetProperty("SecureFed");
        Assert.Equal("test-fed", a.GetProperty("Federation").GetString());
        Assert.Equal("https://agg.example.org:7443", a.GetProperty("Listen").GetString());
        Assert.Equal(2, a.GetProperty("MinSites").GetInt32());

        using JsonDocument agent = JsonDocument.Parse(File.ReadAllText(Path.Combine(federation.Root, "sites", "site-fr", KitFiles.AgentConfig)));
        JsonElement g = agent.RootElement.GetProperty("SecureFed");
        Assert.Equal("site-fr", g.GetProperty("Site").GetString());
        Assert.Equal("https://agg.example.org:7443", g.GetProperty("Aggregator").GetString());
        Assert.Equal(1e-5, g.GetProperty("Delta").GetDouble());
    }

    [Fact]
    public void Provision_DeterministicSourceAndClock_IdentityKeysAndTimesFollowThem()
    {
        using var dir = new TempDirectory();
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 1, 2, 3, 4, 5, 678, TimeSpan.Zero));
        using var random1 = new SecureFed.Testing.DeterministicRandomSource(7);
        using var random2 = new SecureFed.Testing.DeterministicRandomSource(7);
        ProvisionResult a = FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("a"), "f", ["s1"], "h", TimeSpan.FromDays(10)), random1, time);
        ProvisionResult b = FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("b"), "f", ["s1"], "h", TimeSpan.FromDays(10)), random2, time);

        Assert.Equal(a.Manifest.Sites[0].IdentityPublicKey, b.Manifest.Sites[0].IdentityPublicKey);
        Assert.Equal(new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero), a.Manifest.CreatedUtc);
        Assert.Equal(a.Manifest.CreatedUtc + TimeSpan.FromDays(10), a.NotAfter);
        Assert.Equal(a.NotAfter, new DateTimeOffset(a.Manifest.CaCertificate.NotAfter.ToUniversalTime()));
    }

    [Theory]
    [InlineData("Site-A", "invalid")]
    [InlineData("site_a", "invalid")]
    [InlineData("", "empty")]
    [InlineData("aggregator", "reserved")]
    [InlineData("-", "must start and end with a lowercase letter or digit")]
    [InlineData("--", "must start and end with a lowercase letter or digit")]
    [InlineData("-site", "must start and end with a lowercase letter or digit")]
    [InlineData("site-", "must start and end with a lowercase letter or digit")]
    public void Provision_BadSiteName_ThrowsArgumentExceptionNamingIt(string site, string expected)
    {
        using var dir = new TempDirectory();
        var request = new ProvisionRequest(dir.Combine("out"), "fed", ["ok", site], "host");

        var ex = Assert.Throws<ArgumentException>(() => FederationProvisioner.Provision(request));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.Combine("out")));
    }

    [Fact]
    public void Provision_SiteNameTooLong_ThrowsArgumentException()
    {
        using var dir = new TempDirectory();
        string longName = new('a', 64);

        var ex = Assert.Throws<ArgumentException>(() => FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("out"), "fed", [longName], "host")));

        Assert.Contains("64 characters", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Provision_DuplicateSite_ThrowsArgumentException()
    {
        using var dir = new TempDirectory();

        var ex = Assert.Throws<ArgumentException>(() => FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("out"), "fed", ["a", "b", "a"], "host")));

        Assert.Contains("'a' is listed more than once", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Provision_NonEmptyOutputDirectory_ThrowsIOExceptionAndKeepsContent()
    {
        using var dir = new TempDirectory();
        string output = dir.Combine("out");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "keep.txt"), "precious");

        var ex = Assert.Throws<IOException>(() => FederationProvisioner.Provision(new ProvisionRequest(output, "fed", ["a"], "host")));

        Assert.Contains(output, ex.Message, StringComparison.Ordinal);
        Assert.Equal("precious", File.ReadAllText(Path.Combine(output, "keep.txt")));
        Assert.Single(Directory.GetFileSystemEntries(output));
    }

    [Fact]
    public void Provision_EmptyOutputDirectory_IsUsed()
    {
        using var dir = new TempDirectory();
        string output = dir.Combine("out");
        Directory.CreateDirectory(output);

        ProvisionResult result = FederationProvisioner.Provision(new ProvisionRequest(output, "fed", ["a", "b"], "127.0.0.1"));

        Assert.True(File.Exists(Path.Combine(output, KitFiles.Manifest)));
        using X509Certificate2 cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(result.AggregatorKitDirectory, "tls.crt"));
        Assert.True(cert.MatchesHostname("127.0.0.1"));
    }

    [Fact]
    public void Provision_LinkToAnEmptyFolder_WrittenIntoItsTarget_TheLinkKept()
    {
        // The link used to be deleted and replaced by a real folder, the target left empty.
        using var dir = new TempDirectory();
        string target = dir.Combine("target");
        Directory.CreateDirectory(target);
        string link = dir.Combine("link");
        Directory.CreateSymbolicLink(link, target);

        ProvisionResult result = FederationProvisioner.Provision(new ProvisionRequest(link, "fed", ["a", "b"], "127.0.0.1"));

        Assert.Equal(target, new DirectoryInfo(link).LinkTarget);
        Assert.True(File.Exists(Path.Combine(target, KitFiles.Manifest)));
        Assert.True(File.Exists(Path.Combine(result.AggregatorKitDirectory, "tls.crt")));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(target), e => Path.GetFileName(e).StartsWith(".provisioning-", StringComparison.Ordinal));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(dir.Path), e => Path.GetFileName(e).Contains(".provisioning-", StringComparison.Ordinal));
    }

    [Fact]
    public void Provision_OutputHoldsOnlyAnInterruptedStagingFolder_RefusedSayingSoAndKept()
    {
        using var dir = new TempDirectory();
        string output = dir.Combine("out");
        Directory.CreateDirectory(Path.Combine(output, ".provisioning-0123abcd"));

        var ex = Assert.Throws<IOException>(() => FederationProvisioner.Provision(new ProvisionRequest(output, "fed", ["a"], "host")));

        Assert.Contains("holds only .provisioning-0123abcd, the staging folder of a provisioning that was interrupted; delete it and run again", ex.Message, StringComparison.Ordinal);
        Assert.True(Directory.Exists(Path.Combine(output, ".provisioning-0123abcd")));
    }

    [Fact]
    public void Provision_BadHostOrValidity_ThrowsArgumentException()
    {
        using var dir = new TempDirectory();
        Assert.Throws<ArgumentException>(() => FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("a"), "fed", ["a"], "bad host!")));
        Assert.Throws<ArgumentException>(() => FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("b"), "fed", ["a"], "host", TimeSpan.Zero)));
        Assert.Throws<ArgumentException>(() => FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("c"), "Fed", ["a"], "host")));
    }

    /// <summary>
    /// CLI crash hunt (session 56): "[::1]" was taken and the agents' URL became "https://[[::1]]:7443", which the agent
    /// refused; it is refused naming the address without brackets, which is taken and bracketed once in the URL.
    /// </summary>
    [Fact]
    public void Provision_BracketedIpv6Host_RefusedNamingTheAddressWithoutBrackets_PlainOneBracketedOnceInTheUrl()
    {
        using var dir = new TempDirectory();
        var ex = Assert.Throws<ArgumentException>(() => FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("a"), "fed", ["site-a", "site-b"], "[::1]")));
        Assert.StartsWith("Aggregator host '[::1]': give an IPv6 address without the brackets (::1); the agents' URLs add them.", ex.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.Combine("a")) && Directory.EnumerateFileSystemEntries(dir.Combine("a")).Any());

        ProvisionResult plain = FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("b"), "fed", ["site-a", "site-b"], "::1"));
        string agent = File.ReadAllText(Path.Combine(plain.SiteKitDirectories["site-a"], KitFiles.AgentConfig));
        Assert.Contains("\"https://[::1]:", agent, StringComparison.Ordinal);
    }
}
