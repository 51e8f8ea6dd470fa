using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureFed.Federation;

namespace SecureFed.Aggregator.Operations;

/// <summary>
/// The operator's admin listener: plain HTTP/1.1 on a loopback port of its own, never the agents' mTLS endpoint.
/// Connections accepted on it are marked (Kestrel connection middleware), and only marked connections reach the
/// console and <c>/metrics</c>; the gRPC services are never reachable through it, nor the console through the agents'
/// port. Every page except the login form needs the operator token (<c>Authorization: Bearer</c>, as Prometheus sends
/// it) or a session cookie obtained by presenting the token on the login form.
/// </summary>
internal static class AdminListener
{
    private const string Marker = "securefed.admin-listener";

    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    /// <summary>Binds the admin endpoint to <paramref name="address"/> and marks its connections.</summary>
    public static void Listen(KestrelServerOptions kestrel, Uri address)
    {
        IPAddress ip = address.Host is "localhost" ? IPAddress.Loopback : IPAddress.Parse(address.Host.Trim('[', ']'));
        kestrel.Listen(ip, address.Port, endpoint =>
        {
            endpoint.Protocols = HttpProtocols.Http1;
            endpoint.Use(next => connection =>
            {
                connection.Items[Marker] = Marker;
                return next(connection);
            });
        });
    }

    /// <summary>True for a request that came in on the admin listener.</summary>
    public static bool IsAdminConnection(HttpContext context)
        => context.Features.Get<IConnectionItemsFeature>()?.Items.ContainsKey(Marker) == true;

    /// <summary>Adds the admin branch to the pipeline (before routing, so it never reaches the gRPC endpoints).</summary>
    public static void Map(WebApplication app)
    {
        app.MapWhen(IsAdminConnection, admin =>
        {
            admin.Use(GuardAsync);
            admin.UseOpenTelemetryPrometheusScrapingEndpoint();
            admin.Run(ServeAsync);
        });
    }

    private static async Task GuardAsync(HttpContext context, RequestDelegate next)
    {
        HttpResponse response = context.Response;
        response.Headers.CacheControl = "no-store";
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers.XFrameOptions = "DENY";
        response.Headers.ContentSecurityPolicy = ContentSecurityPolicy;
        response.Headers["Referrer-Policy"] = "no-referrer";
        if (!IsLoopbackHost(context.Request.Host))
        {
            // A page elsewhere that rebinds its DNS name to 127.0.0.1 must not reach the console.
            response.StatusCode = StatusCodes.Status400BadRequest;
            await response.WriteAsync("The admin listener answers only to 127.0.0.1, [::1] or localhost.", context.RequestAborted).ConfigureAwait(false);
            return;
        }

        IServiceProvider services = context.RequestServices;
        var credential = services.GetRequiredService<OperatorCredential>();
        var sessions = services.GetRequiredService<OperatorSessions>();
        var console = services.GetRequiredService<OperatorConsole>();
        string path = context.Request.Path.Value ?? "/";
        if (path == "/login")
        {
            if (HttpMethods.IsPost(context.Request.Method) && context.Request.HasFormContentType)
            {
                IFormCollection form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
                ILogger logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AdminListener).FullName!);
                string remote = context.Connection.RemoteIpAddress?.ToString() ?? "?";
                if (credential.Accepts(form["token"].ToString()))
                {
                    Log.OperatorLoggedIn(logger, remote);
                    response.Cookies.Append(OperatorSessions.CookieName, sessions.Create(), new CookieOptions
                    {
                        HttpOnly = true,
                        SameSite = SameSiteMode.Strict,
                        Path = "/",
                        IsEssential = true,
                        MaxAge = OperatorSessions.Lifetime,
                    });
                    response.StatusCode = StatusCodes.Status303SeeOther;
                    response.Headers.Location = "/";
                    return;
                }

                // Refused: no session; back to the form, which says so (a redirect, so the browser logs no failed load).
                Log.OperatorLoginRefused(logger, remote);
                response.StatusCode = StatusCodes.Status303SeeOther;
                response.Headers.Location = "/login?refused=1";
                return;
            }

            string? error = context.Request.Query.ContainsKey("refused") ? "That is not the operator token." : null;
            await HtmlAsync(context, StatusCodes.Status200OK, console.LoginPage(error)).ConfigureAwait(false);
            return;
        }

        if (!IsOperator(context, credential, sessions))
        {
            response.Headers.WWWAuthenticate = "Bearer realm=\"securefed-operator\"";
            if (path == "/" && HttpMethods.IsGet(context.Request.Method) && !context.Request.Headers.ContainsKey("Authorization"))
            {
                // A browser without a session: to the login form.
                response.StatusCode = StatusCodes.Status303SeeOther;
                response.Headers.Location = "/login";
            }
            else
            {
                response.StatusCode = StatusCodes.Status401Unauthorized;
                await response.WriteAsync("The operator token is required (Authorization: Bearer, or log in at /login).", context.RequestAborted).ConfigureAwait(false);
            }

            return;
        }

        await next(context).ConfigureAwait(false);
    }

    private static Task ServeAsync(HttpContext context)
    {
        OperatorConsole console = context.RequestServices.GetRequiredService<OperatorConsole>();
        string path = context.Request.Path.Value ?? "/";
        bool get = HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method);
        switch (path)
        {
            case "/" when get:
                return HtmlAsync(context, StatusCodes.Status200OK, console.Page());
            case "/live" when get:
                return HtmlAsync(context, StatusCodes.Status200OK, console.Live());
            case "/console.js" when get:
                context.Response.ContentType = "text/javascript; charset=utf-8";
                return context.Response.WriteAsync(OperatorConsole.Script, context.RequestAborted);
            case "/logout" when HttpMethods.IsPost(context.Request.Method):
                context.RequestServices.GetRequiredService<OperatorSessions>().End(context.Request.Cookies[OperatorSessions.CookieName]);
                context.Response.Cookies.Delete(OperatorSessions.CookieName);
                context.Response.StatusCode = StatusCodes.Status303SeeOther;
                context.Response.Headers.Location = "/login";
                return Task.CompletedTask;
            default:
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return context.Response.WriteAsync("Not found. The console is at /, the metrics at /metrics.", context.RequestAborted);
        }
    }

    private static bool IsOperator(HttpContext context, OperatorCredential credential, OperatorSessions sessions)
    {
        string authorization = context.Request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return credential.Accepts(authorization["Bearer ".Length..]);
        }

        return sessions.IsValid(context.Request.Cookies[OperatorSessions.CookieName]);
    }

    private static bool IsLoopbackHost(HostString host)
        => host.Host is "localhost" or "127.0.0.1" or "[::1]" || (IPAddress.TryParse(host.Host, out IPAddress? ip) && IPAddress.IsLoopback(ip));

    private static Task HtmlAsync(HttpContext context, int status, string html)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/html; charset=utf-8";
        return context.Response.WriteAsync(html, context.RequestAborted);
    }
}
