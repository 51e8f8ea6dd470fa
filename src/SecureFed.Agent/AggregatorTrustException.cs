using System.Security.Authentication;
using Grpc.Core;
using SecureFed.Federation;

namespace SecureFed.Agent;

/// <summary>
/// The TLS handshake with the aggregator failed: its certificate is not one this kit trusts (not signed by the
/// federation's CA in the kit's <c>ca.crt</c>, or not the aggregator the kit's manifest names), or the aggregator refused
/// this site's certificate. Not an outage, so the agent does not wait for it to pass: it stops (exit code 1).
/// </summary>
public sealed class AggregatorTrustException : Exception
{
    private AggregatorTrustException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>True when the aggregator's certificate was rejected here; false when the aggregator (probably) refused ours.</summary>
    public bool AggregatorCertificateRejected { get; private init; }

    /// <summary>
    /// The exception to stop with when this site's own certificate <paramref name="certificate"/> is outside its validity
    /// period at <paramref name="now"/> (expired, or not yet valid); otherwise null. The aggregator refuses such a
    /// certificate at the next connection, which the agent would otherwise see as the aggregator being unreachable.
    /// </summary>
    public static AggregatorTrustException? OwnCertificateOutOfDate(System.Security.Cryptography.X509Certificates.X509Certificate2 certificate, AgentOptions options, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(options);
        DateTimeOffset notBefore = certificate.NotBefore.ToUniversalTime();
        DateTimeOffset notAfter = certificate.NotAfter.ToUniversalTime();
        if (now >= notBefore && now <= notAfter)
        {
            return null;
        }

        string path = Path.GetFullPath(Path.Combine(options.KitDirectory, KitFiles.TlsCertificate));
        string what = now > notAfter
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"expired at {notAfter:u}")
            : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"is not valid before {notBefore:u} (is this machine's clock right? it says {now:u})");
        return new AggregatorTrustException(
            $"this site's certificate ({path}) {what}: the aggregator refuses it. Ask the federation's operator for a renewed site kit and restart the agent with it.",
            new System.Security.Authentication.AuthenticationException($"certificate '{certificate.Subject}' is outside its validity period ({notBefore:u} .. {notAfter:u})"));
    }

    /// <summary>
    /// The exception to stop with when <paramref name="exception"/> failed in the TLS handshake (an
    /// <see cref="AuthenticationException"/> underneath), naming the kit's files to check; otherwise null.
    /// </summary>
    /// <param name="exception">The failed call.</param>
    /// <param name="options">The agent's options (for the kit's paths).</param>
    /// <param name="endpoint">The endpoint called.</param>
    /// <param name="rejection">Why this side rejected the aggregator's certificate, if it did (<see cref="AggregatorClient.LastCertificateRejection"/>).</param>
    public static AggregatorTrustException? From(RpcException exception, AgentOptions options, Uri endpoint, string? rejection = null)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(endpoint);
        AuthenticationException? authentication = null;
        for (Exception? e = exception.Status.DebugException; e is not null && authentication is null; e = e.InnerException)
        {
            authentication = e as AuthenticationException;
        }

        if (authentication is null)
        {
            return null;
        }

        string ca = Path.GetFullPath(Path.Combine(options.KitDirectory, KitFiles.CaCertificate));
        string manifest = Path.GetFullPath(Path.Combine(options.KitDirectory, KitFiles.Manifest));
        if (authentication.Message.Contains("remote certificate", StringComparison.OrdinalIgnoreCase))
        {
            string message = rejection is not null && rejection.Contains("outside its validity period", StringComparison.Ordinal)
                ? $"the aggregator at {endpoint} presented a certificate that has expired or is not yet valid ({rejection}): its operator must renew it " +
                  "(or, if the dates look right, this machine's clock is wrong). The agent stops; start it again once the aggregator has a valid certificate."
                : $"the aggregator at {endpoint} presented a certificate that is not signed by this federation's CA ({ca}) or is not the aggregator named in {manifest}: " +
                  "is this kit from another federation, or the address another federation's aggregator? (TLS: " + authentication.Message + (rejection is null ? "" : "; " + rejection) + ")";
            return new AggregatorTrustException(message, exception) { AggregatorCertificateRejected = true };
        }

        if (authentication.Message.Contains("frame size or a corrupted frame", StringComparison.OrdinalIgnoreCase))
        {
            // .NET's SslStream on a reply that is not TLS at all (a plain-HTTP port, e.g. the aggregator's AdminListen).
            return new AggregatorTrustException(
                $"the aggregator address {endpoint} did not answer with TLS (TLS: {authentication.Message}): is it a plain-HTTP port, e.g. the aggregator's AdminListen (operator console and /metrics)? " +
                "Check SecureFed:Aggregator against the aggregator's SecureFed:Listen.", exception);
        }

        string certificate = Path.GetFullPath(Path.Combine(options.KitDirectory, KitFiles.TlsCertificate));
        return new AggregatorTrustException(
            $"the TLS handshake with the aggregator at {endpoint} failed: it probably refused this site's certificate ({certificate}), " +
            "e.g. a kit from another federation or a certificate it no longer accepts (TLS: " + authentication.Message + ")", exception);
    }
}
