using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace SecureFed.Agent;

/// <summary>
/// The agent's admin listener (<see cref="AgentOptions.AdminListen"/>): plain HTTP/1.1 on a loopback port of its own,
/// serving only this agent's metrics at <c>/metrics</c> (the OpenTelemetry Prometheus exporter, as on the aggregator's
/// admin listener) for the hospital's Prometheus. It is the agent's only listener: the agent serves nothing to the
/// aggregator, whose mTLS endpoint it only calls. It answers only requests addressed to a loopback name (so a web page
/// that rebinds its DNS name to 127.0.0.1 reads nothing) and needs no credential: whoever can open a connection on the
/// agent's machine can read its training time, bytes sent and ε spent, nothing more (no model, no data, no key).
/// </summary>
internal static class AgentAdminListener
{
    /// <summary>Binds the listener to <paramref name="address"/> (validated as loopback by <see cref="AgentOptions.Validate"/>).</summary>
    public static void Listen(KestrelServerOptions kestrel, Uri address)
    {
        IPAddress ip = address.Host is "localhost" ? IPAddress.Loopback : IPAddress.Parse(address.Host.Trim('[', ']'));
        kestrel.Listen(ip, address.Port, endpoint => endpoint.Protocols = HttpProtocols.Http1);
    }

    /// <summary>The whole pipeline: the guard, <c>/metrics</c>, and 404 for anything else.</summary>
    public static void Map(WebApplication app)
    {
        app.Use(GuardAsync);
        app.UseOpenTelemetryPrometheusScrapingEndpoint();
        app.Run(context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return context.Response.WriteAsync("Not found. This agent serves only its metrics, at /metrics.", context.RequestAborted);
        });
    }

    private static async Task GuardAsync(HttpContext context, RequestDelegate next)
    {
        HttpResponse response = context.Response;
        response.Headers.CacheControl = "no-store";
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers.ContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'";
        if (!IsLoopbackHost(context.Request.Host))
        {
            response.StatusCode = StatusCodes.Status400BadRequest;
            await response.WriteAsync("The agent's admin listener answers only to 127.0.0.1, [::1] or localhost.", context.RequestAborted).ConfigureAwait(false);
            return;
        }

        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            response.Headers.Allow = "GET, HEAD";
            return;
        }

        await next(context).ConfigureAwait(false);
    }

    private static bool IsLoopbackHost(HostString host)
        => host.Host is "localhost" || (IPAddress.TryParse(host.Host, out IPAddress? ip) && IPAddress.IsLoopback(ip));
}
