using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using SecureFed.Aggregator;
using SecureFed.Federation;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The identity rule of the agent-facing service (<see cref="ForwardedIdentity.Decide"/>, docs/cluster.md §6 "Every
/// silo a front"): a site's certificate is that site and may not name a forwarded one; the aggregator's own certificate
/// is a forwarding silo and must name a provisioned, non-revoked site.
/// </summary>
public sealed class ForwardedIdentityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-forwarded-identity-").FullName;
    private readonly ProvisionResult _federation;
    private readonly FederationManifest _manifest;

    public ForwardedIdentityTests()
    {
        _federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "one"), "forwarded", ["site-a", "site-b"], "127.0.0.1"));
        _manifest = FederationManifest.Load(Path.Combine(_federation.AggregatorKitDirectory, KitFiles.Manifest));
    }

    [Fact]
    public void Decide_SiteCertificateWithoutHeader_IsThatSite()
    {
        using PartyKit site = PartyKit.Load(_federation.SiteKitDirectories["site-a"]);

        CallerIdentity caller = ForwardedIdentity.Decide(site.TlsCertificate, null, null, _manifest);

        Assert.False(caller.Refused);
        Assert.Equal("site-a", caller.Site);
        Assert.Null(caller.ForwardedBy);
    }

    [Theory]
    [InlineData("site-b")]
    [InlineData("site-a")]
    public void Decide_SiteCertificateWithForwardedHeader_PermissionDenied(string named)
    {
        using PartyKit site = PartyKit.Load(_federation.SiteKitDirectories["site-a"]);

        CallerIdentity caller = ForwardedIdentity.Decide(site.TlsCertificate, named, "silo-x", _manifest);

        Assert.True(caller.Refused);
        Assert.Equal(StatusCode.PermissionDenied, caller.Code);
        Assert.Equal("site-a", caller.Caller);
        Assert.Equal($"the 'securefed-forwarded-site' header (naming '{named}') is accepted only from a silo of the aggregator cluster, which presents the aggregator's own certificate; "
            + "this caller presented the certificate of site 'site-a'", caller.Reason);
    }

    [Fact]
    public void Decide_AggregatorCertificateWithHeader_IsTheForwardedSiteBySilo()
    {
        using PartyKit aggregator = PartyKit.Load(_federation.AggregatorKitDirectory);

        CallerIdentity caller = ForwardedIdentity.Decide(aggregator.TlsCertificate, "site-b", "S127.0.0.1:11111:1", _manifest);

        Assert.False(caller.Refused);
        Assert.Equal("site-b", caller.Site);
        Assert.Equal("S127.0.0.1:11111:1", caller.ForwardedBy);
    }

    [Fact]
    public void Decide_AggregatorCertificateWithoutHeader_PermissionDenied()
    {
        using PartyKit aggregator = PartyKit.Load(_federation.AggregatorKitDirectory);

        CallerIdentity caller = ForwardedIdentity.Decide(aggregator.TlsCertificate, null, null, _manifest);

        Assert.True(caller.Refused);
        Assert.Equal(StatusCode.PermissionDenied, caller.Code);
        Assert.Contains("the aggregator's own certificate identifies no site", caller.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_AggregatorCertificateNamingUnknownOrRevokedSite_PermissionDenied()
    {
        using PartyKit aggregator = PartyKit.Load(_federation.AggregatorKitDirectory);

        CallerIdentity unknown = ForwardedIdentity.Decide(aggregator.TlsCertificate, "site-z", "silo-x", _manifest);
        CallerIdentity revoked = ForwardedIdentity.Decide(aggregator.TlsCertificate, "site-b", "silo-x", _manifest.WithRevoked("site-b"));

        Assert.Equal(StatusCode.PermissionDenied, unknown.Code);
        Assert.Equal("unknown site 'site-z' (forwarded by silo silo-x)", unknown.Reason);
        Assert.Equal(StatusCode.PermissionDenied, revoked.Code);
        Assert.Equal("site 'site-b' is revoked (forwarded by silo silo-x)", revoked.Reason);
    }

    [Fact]
    public void Decide_AnotherFederationsAggregatorCertificateWithHeader_PermissionDenied()
    {
        ProvisionResult other = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "other"), "forwarded", ["site-a", "site-b"], "127.0.0.1"));
        using PartyKit foreign = PartyKit.Load(other.AggregatorKitDirectory);

        CallerIdentity caller = ForwardedIdentity.Decide(foreign.TlsCertificate, "site-a", "silo-x", _manifest);

        Assert.True(caller.Refused);
        Assert.Equal(StatusCode.PermissionDenied, caller.Code);
        Assert.Contains("is accepted only from a silo of the aggregator cluster", caller.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_NoCertificate_Unauthenticated()
    {
        CallerIdentity caller = ForwardedIdentity.Decide(null, "site-a", "silo-x", _manifest);

        Assert.Equal(StatusCode.Unauthenticated, caller.Code);
        Assert.Null(caller.Site);
    }

    [Fact]
    public void AggregatorCertificate_AllowsTlsClientAuthentication()
    {
        // The forwarding silo presents it as its TLS client certificate (and the cluster's ports do already).
        using PartyKit aggregator = PartyKit.Load(_federation.AggregatorKitDirectory);
        X509EnhancedKeyUsageExtension usage = aggregator.TlsCertificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single();

        Assert.Contains(usage.EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>(), o => o.Value == PeerTrust.ClientAuthOid);
        Assert.Null(ClusterTls.Problem(aggregator));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
