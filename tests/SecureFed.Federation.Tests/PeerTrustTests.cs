using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace SecureFed.Federation.Tests;

public sealed class PeerTrustTests(ProvisionedFederation federation) : IClassFixture<ProvisionedFederation>
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(20);

    private X509Certificate2 SiteCertificate(string site) =>
        X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, "sites", site, KitFiles.TlsCertificate));

    private FederationManifest Manifest => federation.Result.Manifest;

    [Fact]
    public void IdentifySite_ProvisionedSite_ReturnsItsName()
    {
        using X509Certificate2 cert = SiteCertificate("site-fr");

        string? site = PeerTrust.IdentifySite(cert, Manifest, out string? error);

        Assert.Equal("site-fr", site);
        Assert.Null(error);
    }

    [Fact]
    public void IdentifySite_RevokedSite_RefusedAsRevoked()
    {
        using X509Certificate2 cert = SiteCertificate("site-fr");
        FederationManifest revoked = Manifest.WithRevoked("site-fr");

        string? site = PeerTrust.IdentifySite(cert, revoked, out string? error);

        Assert.Null(site);
        Assert.Equal("site 'site-fr' is revoked", error);
        Assert.Equal("site-de", PeerTrust.IdentifySite(SiteCertificate("site-de"), revoked, out _));
    }

    [Fact]
    public void IdentifySite_SiteUnknownToManifest_RefusedAsUnknown()
    {
        // A certificate from the federation CA whose site is missing from the manifest.
        using var dir = new TempDirectory();
        ProvisionResult other = FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("f"), "fed", ["site-a", "site-b"], "host"));
        string json = File.ReadAllText(other.ManifestPath);
        string withoutB = RemoveSite(json, "site-b");
        FederationManifest manifest = FederationManifest.Parse(withoutB);
        using X509Certificate2 cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(other.SiteKitDirectories["site-b"], KitFiles.TlsCertificate));

        string? site = PeerTrust.IdentifySite(cert, manifest, out string? error);

        Assert.Null(site);
        Assert.Equal("unknown site 'site-b'", error);
    }

    [Fact]
    public void IdentifySite_CertificateFromForeignCa_RefusedAsNotIssuedByCa()
    {
        using var dir = new TempDirectory();
        ProvisionResult foreign = FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("f"), "test-fed", ["site-fr"], "agg.example.org"));
        using X509Certificate2 impostor = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(foreign.SiteKitDirectories["site-fr"], KitFiles.TlsCertificate));

        string? site = PeerTrust.IdentifySite(impostor, Manifest, out string? error);

        Assert.Null(site);
        Assert.Equal(PeerTrust.NotIssuedByFederationCa, error);
    }

    [Fact]
    public void IdentifySite_AggregatorCertificateAsClient_RefusedAsNoSite()
    {
        // The aggregator's certificate allows client authentication (the cluster's silos authenticate to each other with
        // it), but its CN is the reserved name 'aggregator', never a site's: it cannot pass for one.
        using X509Certificate2 server = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, "aggregator", KitFiles.TlsCertificate));

        string? site = PeerTrust.IdentifySite(server, Manifest, out string? error);

        Assert.Null(site);
        Assert.Equal("unknown site 'aggregator'", error);
    }

    [Fact]
    public void IdentifySite_CaCertificateItself_Refused()
    {
        string? site = PeerTrust.IdentifySite(Manifest.CaCertificate, Manifest, out string? error);

        Assert.Null(site);
        Assert.NotNull(error);
    }

    [Fact]
    public void IdentifySite_ExpiredCertificate_RefusedAsOutsideValidity()
    {
        using var dir = new TempDirectory();
        var past = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow - TimeSpan.FromDays(30));
        ProvisionResult old = FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("f"), "fed", ["site-a"], "host", TimeSpan.FromDays(1)), time: past);
        using X509Certificate2 cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(old.SiteKitDirectories["site-a"], KitFiles.TlsCertificate));

        string? site = PeerTrust.IdentifySite(cert, old.Manifest, out string? error);

        Assert.Null(site);
        Assert.Contains("outside its validity period", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AggregatorValidationCallback_SaysWhyItRejects_ExpiredAggregatorAndSiteCertificate_NothingForTheAggregator()
    {
        var reasons = new List<string>();
        using X509Certificate2 server = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, "aggregator", KitFiles.TlsCertificate));
        using X509Certificate2 site = SiteCertificate("site-de");
        System.Net.Security.RemoteCertificateValidationCallback callback = PeerTrust.AggregatorValidationCallback(Manifest, reasons.Add);

        Assert.True(callback(this, server, null, System.Net.Security.SslPolicyErrors.None));
        Assert.Empty(reasons);
        Assert.False(callback(this, site, null, System.Net.Security.SslPolicyErrors.None));
        Assert.Single(reasons);
        Assert.False(callback(this, server, null, System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch));
        Assert.Contains("does not name the host", reasons[^1], StringComparison.Ordinal);

        // A federation whose certificates ran out 29 days ago: its aggregator's certificate is rejected as such.
        using var dir = new TempDirectory();
        var past = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow - TimeSpan.FromDays(30));
        ProvisionResult old = FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("f"), "fed", ["site-a"], "host", TimeSpan.FromDays(1)), time: past);
        using X509Certificate2 expired = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(dir.Combine("f"), "aggregator", KitFiles.TlsCertificate));
        var oldReasons = new List<string>();

        Assert.False(PeerTrust.AggregatorValidationCallback(old.Manifest, oldReasons.Add)(this, expired, null, System.Net.Security.SslPolicyErrors.None));
        Assert.Contains("outside its validity period", Assert.Single(oldReasons), StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateAggregator_ManifestAggregator_AcceptedAndSiteCertRefused()
    {
        using X509Certificate2 server = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(federation.Root, "aggregator", KitFiles.TlsCertificate));
        using X509Certificate2 site = SiteCertificate("site-de");

        Assert.True(PeerTrust.ValidateAggregator(server, Manifest, out string? ok), ok);
        Assert.False(PeerTrust.ValidateAggregator(site, Manifest, out string? error));
        Assert.Contains("TLS server authentication", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Handshake_ProvisionedSiteOverLoopback_MutuallyAuthenticated()
    {
        using PartyKit aggregator = PartyKit.Load(Path.Combine(federation.Root, "aggregator"));
        using PartyKit site = PartyKit.Load(Path.Combine(federation.Root, "sites", "site-jp"));

        (string? serverSaw, Exception? serverError, Exception? clientError) = await HandshakeAsync(aggregator, site.TlsCertificate, site.Manifest);

        Assert.Null(serverError);
        Assert.Null(clientError);
        Assert.Equal("site-jp", serverSaw);
    }

    [Fact]
    public async Task Handshake_RevokedSite_RefusedByServer()
    {
        using PartyKit aggregator = PartyKit.Load(Path.Combine(federation.Root, "aggregator"));
        using PartyKit site = PartyKit.Load(Path.Combine(federation.Root, "sites", "site-de"));

        (string? serverSaw, Exception? serverError, _) = await HandshakeAsync(aggregator, site.TlsCertificate, site.Manifest, aggregator.Manifest.WithRevoked("site-de"));

        Assert.Null(serverSaw);
        Assert.IsType<AuthenticationException>(serverError);
    }

    [Fact]
    public async Task Handshake_ForeignCaClient_RefusedByServer()
    {
        using var dir = new TempDirectory();
        ProvisionResult foreign = FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("f"), "test-fed", ["site-jp"], "agg.example.org"));
        using PartyKit impostor = PartyKit.Load(foreign.SiteKitDirectories["site-jp"]);
        using PartyKit aggregator = PartyKit.Load(Path.Combine(federation.Root, "aggregator"));

        // The impostor trusts the real aggregator (knows our manifest) but its certificate is from another CA.
        (string? serverSaw, Exception? serverError, _) = await HandshakeAsync(aggregator, impostor.TlsCertificate, aggregator.Manifest);

        Assert.Null(serverSaw);
        Assert.IsType<AuthenticationException>(serverError);
    }

    [Fact]
    public async Task Handshake_ClientOfAnotherFederation_RefusesOurServer()
    {
        using var dir = new TempDirectory();
        ProvisionResult foreign = FederationProvisioner.Provision(new ProvisionRequest(dir.Combine("f"), "test-fed", ["site-jp"], "agg.example.org"));
        using PartyKit foreignSite = PartyKit.Load(foreign.SiteKitDirectories["site-jp"]);
        using PartyKit aggregator = PartyKit.Load(Path.Combine(federation.Root, "aggregator"));

        (_, _, Exception? clientError) = await HandshakeAsync(aggregator, foreignSite.TlsCertificate, foreignSite.Manifest);

        Assert.IsType<AuthenticationException>(clientError);
    }

    /// <summary>One TLS 1.2/1.3 handshake over 127.0.0.1 with the federation's validation on both sides.</summary>
    private static async Task<(string? ServerSaw, Exception? ServerError, Exception? ClientError)> HandshakeAsync(
        PartyKit server,
        X509Certificate2 clientCertificate,
        FederationManifest clientManifest,
        FederationManifest? serverManifest = null)
    {
        serverManifest ??= server.Manifest;
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var cts = new CancellationTokenSource(s_timeout);

        string? serverSaw = null;
        Task<Exception?> serverTask = Task.Run(async () =>
        {
            using TcpClient accepted = await listener.AcceptTcpClientAsync(cts.Token);
            await using var ssl = new SslStream(accepted.GetStream());
            try
            {
                await ssl.AuthenticateAsServerAsync(
                    new SslServerAuthenticationOptions
                    {
                        ServerCertificate = server.TlsCertificate,
                        ClientCertificateRequired = true,
                        RemoteCertificateValidationCallback = PeerTrust.SiteValidationCallback(serverManifest),
                    },
                    cts.Token);
                serverSaw = PeerTrust.IdentifySite((X509Certificate2)ssl.RemoteCertificate!, serverManifest, out _);
                await ssl.WriteAsync(new byte[] { 42 }, cts.Token);
                return null;
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
                return ex;
            }
        });

        Exception? clientError = null;
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port, cts.Token);
            await using var ssl = new SslStream(client.GetStream());
            await ssl.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    TargetHost = "localhost",
                    ClientCertificates = [clientCertificate],
                    RemoteCertificateValidationCallback = PeerTrust.AggregatorValidationCallback(clientManifest),
                },
                cts.Token);
            byte[] one = new byte[1];
            int read = await ssl.ReadAsync(one, cts.Token);
            if (read != 1 || one[0] != 42)
            {
                throw new IOException("no application data after the handshake");
            }
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            clientError = ex;
        }

        Exception? serverError = await serverTask.WaitAsync(s_timeout);
        return (serverSaw, serverError, clientError);
    }

    private static string RemoveSite(string json, string site)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        var sites = node["sites"]!.AsArray();
        var entry = sites.First(s => (string?)s!["name"] == site);
        sites.Remove(entry);
        return node.ToJsonString();
    }
}
