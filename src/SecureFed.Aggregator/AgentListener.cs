using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SecureFed.Federation;

namespace SecureFed.Aggregator;

/// <summary>
/// The agent-facing endpoint: HTTP/2 over TLS 1.2/1.3 with the aggregator's certificate, and a client certificate
/// required and chained to the federation CA (mutual TLS). The single-process aggregator, the coordinator silo and the
/// slice silos all bind it here, so they make the same checks, and bound each site's open connections the same way
/// (<see cref="ConnectionGate"/>).
/// </summary>
public static class AgentListener
{
    /// <summary>
    /// Binds <paramref name="listen"/> (a host of <c>localhost</c>, an IP address, or any other name for every address).
    /// After the TLS handshake, a connection takes one of its site's <see cref="ConnectionGate.LimitPerSite"/> places for as
    /// long as it is open; one over the limit is closed at once, before any HTTP/2 frame of it is read, and logged at most
    /// once per site every <see cref="ConnectionGate.LogInterval"/>. The site is the one whose provisioned certificate the
    /// connection presented (<see cref="PeerTrust.IdentifySite"/>); certificates of the federation CA that identify no site
    /// share <see cref="ConnectionGate.Unidentified"/>. Connections presenting the aggregator's own certificate (silos of the
    /// aggregator cluster forwarding calls, docs/cluster.md §6; only the aggregator holds its key) are not counted.
    /// </summary>
    /// <param name="kestrel">The server's options.</param>
    /// <param name="listen">The address agents call.</param>
    /// <param name="kit">The aggregator's kit: its TLS certificate, the federation CA and the manifest.</param>
    /// <param name="connections">The per-site bound on open connections (<c>SecureFed:MaxConnectionsPerSite</c>).</param>
    public static void Listen(KestrelServerOptions kestrel, Uri listen, PartyKit kit, ConnectionGate connections)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(kit);
        ArgumentNullException.ThrowIfNull(connections);
        kestrel.Limits.MaxRequestBodySize = null; // streams are bounded per message by gRPC
        IPAddress address = listen.Host is "localhost" ? IPAddress.Loopback
            : IPAddress.TryParse(listen.Host, out IPAddress? ip) ? ip : IPAddress.Any;
        // Resolved at the first refusal: the server's services are set on the options once the host is built.
        var logger = new Lazy<ILogger>(() => (kestrel.ApplicationServices is { } services ? services.GetService<ILoggerFactory>() : null)?.CreateLogger<ConnectionGate>()
            ?? NullLogger<ConnectionGate>.Instance);
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

            // After UseHttps: the handshake is done and the client certificate known; HTTP/2 has not read a byte yet.
            endpoint.Use(next => connection => BoundAsync(connection, next, connections, kit.Manifest, logger));
        });
    }

    /// <summary>
    /// Who a connection counts against: the site its certificate identifies, <see cref="ConnectionGate.Unidentified"/> for any
    /// other certificate (or none), or null for the aggregator's own certificate (not counted).
    /// </summary>
    /// <param name="certificate">The TLS client certificate, or null.</param>
    /// <param name="manifest">The federation manifest of the aggregator's kit.</param>
    public static string? CountedAs(X509Certificate2? certificate, FederationManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (certificate is null)
        {
            return ConnectionGate.Unidentified;
        }

        return PeerTrust.IdentifySite(certificate, manifest, out _)
            ?? (PeerTrust.IsAggregatorCertificate(certificate, manifest, out _) ? null : ConnectionGate.Unidentified);
    }

    private static async Task BoundAsync(ConnectionContext connection, ConnectionDelegate next, ConnectionGate connections, FederationManifest manifest, Lazy<ILogger> logger)
    {
        string? site = CountedAs(connection.Features.Get<ITlsConnectionFeature>()?.ClientCertificate, manifest);
        if (site is null)
        {
            await next(connection).ConfigureAwait(false);
            return;
        }

        if (!connections.TryAcquire(site))
        {
            if (connections.RefusalToLog(site, out long refused))
            {
                Log.ConnectionRefused(logger.Value, site, connections.LimitPerSite, refused);
            }

            connection.Abort(new ConnectionAbortedException($"site '{site}' already holds {connections.LimitPerSite} connections (SecureFed:MaxConnectionsPerSite)"));
            return;
        }

        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            connections.Release(site);
        }
    }
}
