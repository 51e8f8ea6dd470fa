using System.Net;
using System.Security.Authentication;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using SecureFed.Federation;

namespace SecureFed.Aggregator;

/// <summary>
/// The agent-facing endpoint: HTTP/2 over TLS 1.2/1.3 with the aggregator's certificate, and a client certificate
/// required and chained to the federation CA (mutual TLS). The single-process aggregator, the coordinator silo and the
/// slice silos all bind it here, so they make the same checks.
/// </summary>
public static class AgentListener
{
    /// <summary>Binds <paramref name="listen"/> (a host of <c>localhost</c>, an IP address, or any other name for every address).</summary>
    /// <param name="kestrel">The server's options.</param>
    /// <param name="listen">The address agents call.</param>
    /// <param name="kit">The aggregator's kit: its TLS certificate and the federation CA.</param>
    public static void Listen(KestrelServerOptions kestrel, Uri listen, PartyKit kit)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(kit);
        kestrel.Limits.MaxRequestBodySize = null; // streams are bounded per message by gRPC
        IPAddress address = listen.Host is "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(listen.Host, out IPAddress? ip) ? ip : IPAddress.Any;
        kestrel.Listen(address, listen.Port, endpoint =>
        {
            endpoint.Protocols = HttpProtocols.Http2;
            endpoint.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificate = kit.TlsCertificate,
                ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                SslProtocols = SslProtocols.Tls13 | SslProtocols.Tls12,
                ClientCertificateValidation = (certificate, _, _) => PeerTrust.ValidateChain(certificate, kit.CaCertificate, out _),
            });
        });
    }
}
