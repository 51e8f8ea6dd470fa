using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
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
/// it) or a session cookie obtained by presenting the token on the login form. Wrong tokens (on the form or as a bearer
/// token) are counted per remote address and in all by <see cref="OperatorLoginLimiter"/>: past its limits, token
/// attempts are answered 429 with <c>Retry-After</c> without being checked; a valid session cookie is not affected.
/// </summary>
internal static class AdminListener
{
    private const string Marker = "securefed.admin-listener";

    /// <summary>The largest request body the admin listener reads: the login form (a token of at most 256 characters) with room to spare.</summary>
    internal const long MaxBodyBytes = 16 * 1024;

    /// <summary>The login form's limits: a few short fields (the token and whatever a browser adds), never files.</summary>
    private static readonly FormOptions LoginForm = new()
    {
        ValueCountLimit = 8,
        KeyLengthLimit = 64,
        ValueLengthLimit = 1024,
        MultipartBodyLengthLimit = 0,
        BufferBody = false,
    };

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
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodyLimit)
        {
            // Nothing on this listener takes more than the login form (the agents' port lifts Kestrel's limit for its
            // streams, and that setting is server-wide): a body past this is refused before it is read (413).
            bodyLimit.MaxRequestBodySize = MaxBodyBytes;
        }

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
        var limiter = services.GetRequiredService<OperatorLoginLimiter>();
        string path = context.Request.Path.Value ?? "/";
        if (path == "/login")
        {
            if (HttpMethods.IsPost(context.Request.Method))
            {
                if (limiter.LockedOut(context.Connection.RemoteIpAddress) is { } locked)
                {
                    // Not read and not checked: a check would still answer each guess.
                    await LockedOutAsync(context, locked, console).ConfigureAwait(false);
                    return;
                }

                IFormCollection? form = await ReadLoginFormAsync(context).ConfigureAwait(false);
                if (form is null)
                {
                    return;
                }

                ILogger logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AdminListener).FullName!);
                string remote = context.Connection.RemoteIpAddress?.ToString() ?? "?";
                // Checked again now that the body is in, and reserved with the check: requests whose headers all came
                // before the lockout (their bodies read in parallel) would otherwise each have had their token compared.
                if (CheckToken(context, limiter, logger, () => credential.Accepts(form["token"].ToString()), () => Log.OperatorLoginRefused(logger, remote), out OperatorLockout? lockout))
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

                if (lockout is not null)
                {
                    await LockedOutAsync(context, lockout, console).ConfigureAwait(false);
                    return;
                }

                // Refused: no session; back to the form, which says so (a redirect, so the browser logs no failed load).
                response.StatusCode = StatusCodes.Status303SeeOther;
                response.Headers.Location = "/login?refused=1";
                return;
            }

            if (!IsGetOrHead(context))
            {
                await MethodNotAllowedAsync(context, "GET, HEAD, POST").ConfigureAwait(false);
                return;
            }

            string? error = context.Request.Query.ContainsKey("refused") ? "That is not the operator token." : null;
            await HtmlAsync(context, StatusCodes.Status200OK, console.LoginPage(error)).ConfigureAwait(false);
            return;
        }

        string authorization = context.Request.Headers.Authorization.ToString();
        bool bearer = authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);
        bool authorized;
        if (bearer)
        {
            ILogger logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AdminListener).FullName!);
            authorized = CheckToken(context, limiter, logger, () => credential.Accepts(authorization["Bearer ".Length..]), wrong: null, out OperatorLockout? bearerLockout);
            if (bearerLockout is not null)
            {
                await LockedOutAsync(context, bearerLockout, console: null).ConfigureAwait(false);
                return;
            }
        }
        else
        {
            authorized = sessions.IsValid(context.Request.Cookies[OperatorSessions.CookieName]);
        }

        if (!authorized)
        {
            response.Headers.WWWAuthenticate = "Bearer realm=\"securefed-operator\"";
            bool browser = !context.Request.Headers.ContainsKey("Authorization");
            if (browser && ((path == "/" && HttpMethods.IsGet(context.Request.Method)) || (path == "/logout" && HttpMethods.IsPost(context.Request.Method))))
            {
                // A browser without a session (or logging out of one that expired): to the login form.
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
        bool get = IsGetOrHead(context);
        switch (path)
        {
            case "/" or "/live" or "/console.js" when !get:
                return MethodNotAllowedAsync(context, "GET, HEAD");
            case "/logout" when !HttpMethods.IsPost(context.Request.Method):
                return MethodNotAllowedAsync(context, "POST");
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

    /// <summary>
    /// The login form's fields, read within <see cref="LoginForm"/>'s limits; null when the request was answered instead
    /// (415 for a body that is not an URL-encoded form, 413 past <see cref="MaxBodyBytes"/>, 400 for a malformed form),
    /// each with a message naming what is wrong and no session opened.
    /// </summary>
    private static async Task<IFormCollection?> ReadLoginFormAsync(HttpContext context)
    {
        HttpResponse response = context.Response;
        // Parsed as ReadFormAsync parses it: a header that only starts like the form's (an unterminated quoted charset, say)
        // passed a check of its first part, and ReadFormAsync then threw InvalidOperationException ("Incorrect
        // Content-Type"), answered 500 with a stack trace in the log.
        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(context.Request.ContentType, out Microsoft.Net.Http.Headers.MediaTypeHeaderValue? contentType)
            || !contentType.MediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            await response.WriteAsync("The login form is posted as application/x-www-form-urlencoded with one field, token.", context.RequestAborted).ConfigureAwait(false);
            return null;
        }

        try
        {
            return await context.Request.ReadFormAsync(LoginForm, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidDataException or Microsoft.AspNetCore.Http.BadHttpRequestException)
        {
            bool tooLarge = ex is Microsoft.AspNetCore.Http.BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge };
            response.StatusCode = tooLarge ? StatusCodes.Status413PayloadTooLarge : StatusCodes.Status400BadRequest;
            await response.WriteAsync(
                tooLarge ? $"The login form is larger than {MaxBodyBytes} bytes; it carries only the operator token." : $"The login form is malformed: {ex.Message}",
                context.RequestAborted).ConfigureAwait(false);
            return null;
        }
    }

    private static Task MethodNotAllowedAsync(HttpContext context, string allow)
    {
        context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
        context.Response.Headers.Allow = allow;
        return context.Response.WriteAsync($"{context.Request.Method} is not allowed on {context.Request.Path}; allowed: {allow}.", context.RequestAborted);
    }

    private static bool IsGetOrHead(HttpContext context) => HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method);

    /// <summary>
    /// Checks a token from the request's address within <paramref name="limiter"/>'s limits: true when
    /// <paramref name="accepts"/> said it is the operator's. False with <paramref name="lockout"/> set when the token was
    /// not checked (a lockout in force, or too many attempts being checked at once) or when this wrong token is under a
    /// lockout now (a lockout it started is logged, after <paramref name="wrong"/>, which runs for every wrong token
    /// checked); false with null for a wrong token within the limits. The check and
    /// the count are one reservation (<see cref="OperatorLoginLimiter.TryBeginAttempt"/>): no token is compared once the
    /// limit is reached, however many requests arrive at once.
    /// </summary>
    private static bool CheckToken(HttpContext context, OperatorLoginLimiter limiter, ILogger logger, Func<bool> accepts, Action? wrong, out OperatorLockout? lockout)
    {
        if (!limiter.TryBeginAttempt(context.Connection.RemoteIpAddress, out OperatorLoginLimiter.Attempt? attempt, out lockout))
        {
            return false;
        }

        bool accepted = false;
        try
        {
            accepted = accepts();
        }
        finally
        {
            lockout = limiter.Complete(attempt, accepted);
        }

        if (!accepted)
        {
            wrong?.Invoke();
        }

        if (lockout is { Started: true })
        {
            Log.OperatorLockedOut(logger, lockout.Limit, lockout.Global ? "from all addresses together" : "from one address",
                OperatorLoginLimiter.Window.TotalMinutes, context.Connection.RemoteIpAddress?.ToString() ?? "?",
                lockout.Global ? "from every address" : "from that address", lockout.RetryAfterSeconds);
        }

        return accepted;
    }

    /// <summary>429 with <c>Retry-After</c>: the login form saying why (a browser), or the reason as text (a bearer token).</summary>
    private static Task LockedOutAsync(HttpContext context, OperatorLockout lockout, OperatorConsole? console)
    {
        context.Response.Headers.RetryAfter = lockout.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (console is not null)
        {
            return HtmlAsync(context, StatusCodes.Status429TooManyRequests, console.LoginPage(lockout.Message));
        }

        context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        return context.Response.WriteAsync(lockout.Message, context.RequestAborted);
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
