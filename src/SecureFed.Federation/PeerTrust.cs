using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

using SecureFed.Federation.Internal;

namespace SecureFed.Federation;

/// <summary>
/// Certificate trust inside a federation: the federation CA is the only root (<see cref="X509ChainTrustMode.CustomRootTrust"/>,
/// the machine's trust store is ignored), and a site is admitted only if its certificate is the exact one listed in
/// the manifest and the site is not revoked.
/// </summary>
public static class PeerTrust
{
    /// <summary>The TLS server authentication EKU (1.3.6.1.5.5.7.3.1).</summary>
    public const string ServerAuthOid = "1.3.6.1.5.5.7.3.1";

    /// <summary>The TLS client authentication EKU (1.3.6.1.5.5.7.3.2).</summary>
    public const string ClientAuthOid = "1.3.6.1.5.5.7.3.2";

    /// <summary>The message for a certificate that does not chain to the federation CA.</summary>
    public const string NotIssuedByFederationCa = "certificate is not issued by the federation CA";

    /// <summary>Validates that <paramref name="certificate"/> chains to <paramref name="caCertificate"/> (no revocation check).</summary>
    public static bool ValidateChain(X509Certificate2 certificate, X509Certificate2 caCertificate, out string? error) =>
        ValidateChain(certificate, caCertificate, X509RevocationMode.NoCheck, requiredUsageOid: null, out error);

    /// <summary>
    /// Validates that <paramref name="certificate"/> chains to <paramref name="caCertificate"/> only, with
    /// <paramref name="revocationMode"/> (null: <see cref="X509RevocationMode.NoCheck"/>, the federation revokes through the manifest).
    /// </summary>
    public static bool ValidateChain(X509Certificate2 certificate, X509Certificate2 caCertificate, X509RevocationMode? revocationMode, out string? error) =>
        ValidateChain(certificate, caCertificate, revocationMode ?? X509RevocationMode.NoCheck, requiredUsageOid: null, out error);

    /// <summary>
    /// Validates that <paramref name="certificate"/> is a leaf certificate that chains to <paramref name="caCertificate"/>
    /// only, is within its validity period and, when <paramref name="requiredUsageOid"/> is given, carries that EKU.
    /// </summary>
    /// <param name="certificate">The peer's certificate.</param>
    /// <param name="caCertificate">The federation CA, the only trusted root.</param>
    /// <param name="revocationMode">CRL/OCSP checking; the federation revokes through the manifest, so normally <see cref="X509RevocationMode.NoCheck"/>.</param>
    /// <param name="requiredUsageOid">An EKU the certificate must allow (<see cref="ServerAuthOid"/>, <see cref="ClientAuthOid"/>) or null.</param>
    /// <param name="error">Why validation failed, or null.</param>
    public static bool ValidateChain(
        X509Certificate2 certificate,
        X509Certificate2 caCertificate,
        X509RevocationMode revocationMode,
        string? requiredUsageOid,
        out string? error)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(caCertificate);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(caCertificate);
        chain.ChainPolicy.RevocationMode = revocationMode;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        if (requiredUsageOid is not null)
        {
            chain.ChainPolicy.ApplicationPolicy.Add(new Oid(requiredUsageOid));
        }

        bool built;
        try
        {
            built = chain.Build(certificate);
        }
        catch (CryptographicException ex)
        {
            error = $"certificate could not be validated: {ex.Message}";
            return false;
        }

        try
        {
            if (!built)
            {
                X509ChainStatusFlags flags = X509ChainStatusFlags.NoError;
                foreach (X509ChainStatus status in chain.ChainStatus)
                {
                    flags |= status.Status;
                }

                const X509ChainStatusFlags NotFromCa = X509ChainStatusFlags.UntrustedRoot | X509ChainStatusFlags.PartialChain
                    | X509ChainStatusFlags.NotSignatureValid | X509ChainStatusFlags.ExplicitDistrust;
                error = (flags & NotFromCa) != 0
                    ? NotIssuedByFederationCa
                    : (flags & X509ChainStatusFlags.NotTimeValid) != 0
                        ? $"certificate '{certificate.Subject}' is outside its validity period ({certificate.NotBefore.ToUniversalTime():u} .. {certificate.NotAfter.ToUniversalTime():u})"
                        : (flags & X509ChainStatusFlags.NotValidForUsage) != 0
                            ? $"certificate '{certificate.Subject}' is not valid for {UsageName(requiredUsageOid)}"
                            : $"certificate '{certificate.Subject}' is invalid: {string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()))}";
                return false;
            }

            X509Certificate2 root = chain.ChainElements[^1].Certificate;
            if (chain.ChainElements.Count < 2 || !root.RawDataMemory.Span.SequenceEqual(caCertificate.RawDataMemory.Span))
            {
                error = chain.ChainElements.Count < 2 ? "certificate is the federation CA itself, not a party certificate" : NotIssuedByFederationCa;
                return false;
            }

            error = null;
            return true;
        }
        finally
        {
            foreach (X509ChainElement element in chain.ChainElements)
            {
                element.Certificate.Dispose();
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="certificate"/> is this federation's aggregator certificate: it chains to the federation
    /// CA of <paramref name="manifest"/> and its SHA-256 thumbprint (so its public key too) is the manifest's aggregator
    /// thumbprint. No extended key usage is required here; callers that need one check it themselves.
    /// </summary>
    /// <param name="certificate">The peer's certificate.</param>
    /// <param name="manifest">The federation manifest.</param>
    /// <param name="error">Why the certificate is not the aggregator's, or null.</param>
    public static bool IsAggregatorCertificate(X509Certificate2 certificate, FederationManifest manifest, out string? error)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(manifest);
        if (!ValidateChain(certificate, manifest.CaCertificate, X509RevocationMode.NoCheck, requiredUsageOid: null, out error))
        {
            return false;
        }

        string thumbprint = FederationManifest.Thumbprint(certificate);
        if (!CryptographicOperations.FixedTimeEquals(
                System.Text.Encoding.ASCII.GetBytes(thumbprint),
                System.Text.Encoding.ASCII.GetBytes(manifest.Aggregator.CertificateThumbprint)))
        {
            error = $"certificate '{certificate.Subject}' (SHA-256 {thumbprint}) is not the aggregator certificate of federation manifest (SHA-256 {manifest.Aggregator.CertificateThumbprint})";
            return false;
        }

        error = null;
        return true;
    }

    /// <summary>
    /// Identifies the site presenting <paramref name="clientCertificate"/>: it must chain to the federation CA, be
    /// valid for client authentication, its CN must name a site of the manifest whose recorded thumbprint it matches,
    /// and that site must not be revoked.
    /// </summary>
    /// <returns>The site name, or null with <paramref name="error"/> saying precisely why (e.g. <c>site 'x' is revoked</c>,
    /// <c>certificate is not issued by the federation CA</c>, <c>unknown site 'x'</c>).</returns>
    public static string? IdentifySite(X509Certificate2 clientCertificate, FederationManifest manifest, out string? error)
    {
        ArgumentNullException.ThrowIfNull(clientCertificate);
        ArgumentNullException.ThrowIfNull(manifest);
        if (!ValidateChain(clientCertificate, manifest.CaCertificate, X509RevocationMode.NoCheck, ClientAuthOid, out error))
        {
            return null;
        }

        string name = clientCertificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        if (!manifest.TryGetSite(name, out PartyInfo site))
        {
            error = $"unknown site '{name}'";
            return null;
        }

        if (manifest.IsRevoked(name))
        {
            error = $"site '{name}' is revoked";
            return null;
        }

        string thumbprint = FederationManifest.Thumbprint(clientCertificate);
        if (!CryptographicOperations.FixedTimeEquals(
                System.Text.Encoding.ASCII.GetBytes(thumbprint),
                System.Text.Encoding.ASCII.GetBytes(site.CertificateThumbprint)))
        {
            error = $"certificate for site '{name}' (SHA-256 {thumbprint}) is not the one in the federation manifest";
            return null;
        }

        error = null;
        return name;
    }

    /// <summary>
    /// Validates the aggregator's certificate as a client: chains to the federation CA, serverAuth EKU, and its
    /// thumbprint is the manifest's aggregator thumbprint.
    /// </summary>
    public static bool ValidateAggregator(X509Certificate2 serverCertificate, FederationManifest manifest, out string? error)
    {
        ArgumentNullException.ThrowIfNull(serverCertificate);
        ArgumentNullException.ThrowIfNull(manifest);
        if (!ValidateChain(serverCertificate, manifest.CaCertificate, X509RevocationMode.NoCheck, ServerAuthOid, out error))
        {
            return false;
        }

        if (FederationManifest.Thumbprint(serverCertificate) != manifest.Aggregator.CertificateThumbprint)
        {
            error = "server certificate is not the aggregator certificate in the federation manifest";
            return false;
        }

        return true;
    }

    /// <summary>
    /// The HTTP/2 handler of a gRPC client of the aggregator's agent-facing service (an agent, or a silo forwarding to the
    /// coordinator): mutual TLS with <paramref name="kit"/>'s certificate, only the manifest's aggregator certificate
    /// accepted (<see cref="AggregatorValidationCallback"/>), several HTTP/2 connections, keep-alive pings every 30 s.
    /// </summary>
    /// <param name="kit">The party's kit: its certificate, and the manifest naming the aggregator.</param>
    /// <param name="connectTimeout">How long a connection attempt may take.</param>
    /// <param name="rejected">Called with the reason whenever the aggregator's certificate is rejected (for the error the caller stops with).</param>
    public static System.Net.Http.SocketsHttpHandler AggregatorClientHandler(PartyKit kit, TimeSpan connectTimeout, Action<string>? rejected = null)
    {
        ArgumentNullException.ThrowIfNull(kit);
        return new System.Net.Http.SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = [kit.TlsCertificate],
                RemoteCertificateValidationCallback = AggregatorValidationCallback(kit.Manifest, rejected),
            },
            EnableMultipleHttp2Connections = true,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            ConnectTimeout = connectTimeout,
        };
    }

    /// <summary>
    /// A client-side callback for <see cref="SslStream"/> / <c>SocketsHttpHandler.SslOptions</c>: accepts only the
    /// manifest's aggregator certificate and requires the host name to match (the machine trust store is not used).
    /// </summary>
    /// <param name="manifest">The federation's manifest: its CA and the aggregator's thumbprint.</param>
    /// <param name="rejected">Called with the reason whenever a certificate is rejected (e.g. "… is outside its validity period (…)").</param>
    public static RemoteCertificateValidationCallback AggregatorValidationCallback(FederationManifest manifest, Action<string>? rejected = null)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        return (_, certificate, _, errors) =>
        {
            if (certificate is null || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
            {
                rejected?.Invoke("the server presented no certificate");
                return false;
            }

            if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
            {
                rejected?.Invoke($"the server's certificate '{certificate.Subject}' does not name the host this kit connects to");
                return false;
            }

            X509Certificate2 cert = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            if (ValidateAggregator(cert, manifest, out string? error))
            {
                return true;
            }

            rejected?.Invoke(error ?? "the server's certificate is not the aggregator's");
            return false;
        };
    }

    /// <summary>
    /// A server-side callback for <see cref="SslStream"/>: accepts only certificates for which
    /// <see cref="IdentifySite"/> returns a site. (For Kestrel use <c>ClientCertificateValidation = (c, _, _) =&gt; IdentifySite(c, manifest, out _) is not null</c>.)
    /// </summary>
    public static RemoteCertificateValidationCallback SiteValidationCallback(FederationManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        return (_, certificate, _, _) =>
        {
            if (certificate is null)
            {
                return false;
            }

            X509Certificate2 cert = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return IdentifySite(cert, manifest, out _) is not null;
        };
    }

    private static string UsageName(string? oid) => oid switch
    {
        ServerAuthOid => "TLS server authentication",
        ClientAuthOid => "TLS client authentication",
        _ => $"usage {oid}",
    };
}
