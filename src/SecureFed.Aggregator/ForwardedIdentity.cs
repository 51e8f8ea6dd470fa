using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using SecureFed.Aggregator.Operations;
using SecureFed.Audit;
using SecureFed.Federation;

namespace SecureFed.Aggregator;

/// <summary>
/// The identity rule of the agent-facing service, for calls straight from a site and for calls a silo of the aggregator
/// cluster forwards to the coordinator (docs/cluster.md §6, "Every silo a front"). Pure (no I/O): the caller's mTLS
/// certificate, the two forwarding headers and the manifest decide.
/// <list type="bullet">
/// <item>A site's certificate (chain to the federation CA, client authentication, the manifest's thumbprint for its CN,
/// not revoked) identifies that site; it may not carry <see cref="SiteHeader"/>: a site naming another (or itself) as
/// forwarded is refused with PermissionDenied.</item>
/// <item>The aggregator's own certificate (the kit every silo holds; same thumbprint, so the same public key) identifies
/// no site by itself: only with <see cref="SiteHeader"/> naming a provisioned, non-revoked site is the call that site's,
/// forwarded by the silo named in <see cref="SiloHeader"/>. Without the header it is refused.</item>
/// </list>
/// Everything after identification (header, round, stage, cohort checks) is the same code for both.
/// </summary>
public static class ForwardedIdentity
{
    /// <summary>The metadata header a forwarding silo sets to the site it authenticated from the site's certificate.</summary>
    public const string SiteHeader = "securefed-forwarded-site";

    /// <summary>The metadata header a forwarding silo sets to its own name (its Orleans silo address), for the log.</summary>
    public const string SiloHeader = "securefed-forwarded-by";

    private const int MaxHeaderChars = 200;

    /// <summary>Decides who the call comes from.</summary>
    /// <param name="certificate">The TLS client certificate, or null when none was presented.</param>
    /// <param name="forwardedSite">The <see cref="SiteHeader"/> value, or null when absent.</param>
    /// <param name="forwardedBy">The <see cref="SiloHeader"/> value, or null when absent.</param>
    /// <param name="manifest">The federation manifest of this aggregator's kit.</param>
    public static CallerIdentity Decide(X509Certificate2? certificate, string? forwardedSite, string? forwardedBy, FederationManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (certificate is null)
        {
            return Refuse("(no certificate)", StatusCode.Unauthenticated, RefusalReasons.NoCertificate, "a client certificate issued by the federation CA is required");
        }

        bool aggregator = PeerTrust.IsAggregatorCertificate(certificate, manifest, out _);
        if (forwardedSite is null)
        {
            if (aggregator)
            {
                return Refuse("(aggregator certificate)", StatusCode.PermissionDenied, RefusalReasons.ForwardedIdentity,
                    $"the aggregator's own certificate identifies no site: a call forwarded by a silo of the aggregator cluster must name the site in the '{SiteHeader}' header");
            }

            string? site = PeerTrust.IdentifySite(certificate, manifest, out string? error);
            return site is null
                ? Refuse(Subject(certificate), StatusCode.PermissionDenied, RefusalReasons.UnknownCertificate, error ?? "the client certificate does not identify a provisioned site")
                : new CallerIdentity(site, site, null, StatusCode.OK, null, null);
        }

        string named = Shorten(forwardedSite);
        if (!aggregator)
        {
            string? site = PeerTrust.IdentifySite(certificate, manifest, out _);
            string caller = site ?? Subject(certificate);
            return Refuse(caller, StatusCode.PermissionDenied, RefusalReasons.ForwardedIdentity,
                $"the '{SiteHeader}' header (naming '{named}') is accepted only from a silo of the aggregator cluster, which presents the aggregator's own certificate; "
                + (site is null ? $"this caller presented certificate '{caller}'" : $"this caller presented the certificate of site '{site}'"));
        }

        string silo = string.IsNullOrWhiteSpace(forwardedBy) ? "(unnamed silo)" : Shorten(forwardedBy);
        if (!manifest.TryGetSite(forwardedSite, out _))
        {
            return Refuse($"(forwarded by {silo})", StatusCode.PermissionDenied, RefusalReasons.UnknownCertificate, $"unknown site '{named}' (forwarded by silo {silo})");
        }

        if (manifest.IsRevoked(forwardedSite))
        {
            return Refuse(forwardedSite, StatusCode.PermissionDenied, RefusalReasons.UnknownCertificate, $"site '{named}' is revoked (forwarded by silo {silo})");
        }

        return new CallerIdentity(forwardedSite, forwardedSite, silo, StatusCode.OK, null, null);
    }

    private static CallerIdentity Refuse(string caller, StatusCode code, string category, string reason) => new(caller, null, null, code, category, reason);

    private static string Subject(X509Certificate2 certificate)
    {
        string subject = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        return string.IsNullOrEmpty(subject) ? "(unidentified certificate)" : AuditText.Bound(subject, AuditText.IdentifierChars);
    }

    private static string Shorten(string value) => AuditText.Bound(value, MaxHeaderChars);
}
