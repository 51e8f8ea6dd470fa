using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Connections.Security;
using SecureFed.Federation;

namespace SecureFed.Cluster;

/// <summary>
/// Mutual TLS on the cluster's own ports (silo-to-silo and gateway), <see cref="AggregatorClusterOptions.Tls"/> =
/// <see cref="Mutual"/>: every silo and every cluster client presents the aggregator's TLS certificate of its kit and
/// accepts a connection only from a peer presenting that same certificate (it chains to the federation CA and its
/// SHA-256 thumbprint is the manifest's aggregator thumbprint). So only holders of the aggregator's TLS key can join the
/// cluster, call a grain through a gateway or read the traffic between silos (masked slices, unmasking seeds, the
/// unmasked sum); a site's certificate, another federation's aggregator or a connection without a certificate is refused
/// during the handshake, before any Orleans message is read.
/// </summary>
public static partial class ClusterTls
{
    /// <summary>Mutual TLS with the aggregator's certificate (the default).</summary>
    public const string Mutual = "mutual";

    /// <summary>Plain TCP: only for a cluster whose ports no one else can reach (a test on loopback).</summary>
    public const string Off = "off";

    /// <summary>
    /// Whether <paramref name="certificate"/> is this federation's aggregator certificate: it chains to the federation
    /// CA of <paramref name="manifest"/> and its SHA-256 thumbprint is the manifest's aggregator thumbprint. No extended
    /// key usage is required: both ends of a silo-to-silo connection present the same certificate.
    /// </summary>
    /// <param name="certificate">The peer's certificate.</param>
    /// <param name="manifest">The federation manifest of this silo's kit.</param>
    /// <param name="error">Why the certificate is refused, or null.</param>
    public static bool IsAggregatorPeer(X509Certificate2 certificate, FederationManifest manifest, out string? error)
        => PeerTrust.IsAggregatorCertificate(certificate, manifest, out error);

    /// <summary>
    /// Why <paramref name="kit"/> cannot secure the cluster's ports, or null: it must be the aggregator's, and its
    /// certificate must allow client authentication (each silo also connects to the others with it). Aggregator kits
    /// provisioned before the cluster's TLS have server authentication only.
    /// </summary>
    public static string? Problem(PartyKit kit)
    {
        ArgumentNullException.ThrowIfNull(kit);
        if (!kit.IsAggregator)
        {
            return $"{kit.Directory}: the cluster's TLS needs the aggregator's kit, not the kit of site '{kit.Name}'.";
        }

        X509EnhancedKeyUsageExtension? usage = kit.TlsCertificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault();
        if (usage is not null && !usage.EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>().Any(o => o.Value == PeerTrust.ClientAuthOid))
        {
            return $"{kit.Directory}: the aggregator's TLS certificate allows server authentication only, and the silos of a cluster also authenticate to each other with it; "
                + "provision the aggregator's kit again with this version of securefed (its certificate then allows both), or set SecureFed:Cluster:Tls to 'off' on every silo of a cluster whose ports no one else can reach.";
        }

        return null;
    }

    /// <summary>
    /// Sets <paramref name="options"/> for the cluster's mutual TLS with <paramref name="kit"/> (the aggregator's): its
    /// certificate on both sides of every connection, a certificate required from every peer (also from gateway clients),
    /// TLS 1.2 or 1.3, and <see cref="IsAggregatorPeer"/> as the only acceptance rule (the machine's trust store is not
    /// used). Refusals are logged at warning level with the reason.
    /// </summary>
    public static void Configure(TlsOptions options, PartyKit kit, Func<ILogger>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(kit);
        if (Problem(kit) is string problem)
        {
            throw new ArgumentException(problem, nameof(kit));
        }

        FederationManifest manifest = kit.Manifest;
        options.LocalCertificate = kit.TlsCertificate;
        options.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13;
        options.CheckCertificateRevocation = false; // the federation revokes sites through its manifest; the aggregator's certificate is pinned
        options.RemoteCertificateValidation = (certificate, _, _) =>
        {
            if (IsAggregatorPeer(certificate, manifest, out string? error))
            {
                return true;
            }

            Log.PeerRefused(logger?.Invoke() ?? NullLogger.Instance, error ?? "unknown reason");
            return false;
        };
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1701, Level = LogLevel.Warning, Message = "Cluster TLS: refused a connection: {Reason}")]
        public static partial void PeerRefused(ILogger logger, string reason);
    }
}
