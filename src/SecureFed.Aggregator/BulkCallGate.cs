using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SecureFed.Federation;

namespace SecureFed.Aggregator;

/// <summary>
/// Bounds how many of one site's bulk unary calls (<see cref="Methods"/>: <c>ShareKeys</c> and <c>Unmask</c>, whose
/// requests may be up to the 4 MiB message limit and which grpc-dotnet buffers whole before the service runs) are in
/// flight at once: at most <see cref="LimitPerSite"/> per site, so a site makes this process hold at most that many
/// 4 MiB request buffers, however many connections and HTTP/2 streams it opens (threat-model/README.md §7,
/// docs/PROTOCOL.md §3 "Refusals"). As ASP.NET Core middleware (<see cref="UseBulkCallGate"/>, after routing, before the
/// endpoint) it refuses a further call with RESOURCE_EXHAUSTED before its body is read. It knows the call by the gRPC method
/// of the endpoint routing selected (<see cref="BulkMethod"/>), not by the spelling of the request's path, which routing
/// matches case-insensitively and with or without a trailing slash. The caller is identified by the service's own rule
/// (<see cref="ForwardedIdentity.Decide"/>): a call a silo of the aggregator cluster forwards with the aggregator's
/// certificate counts against the site it names. Calls it cannot identify pass through (the service refuses them).
/// Public for the aggregator cluster's slice silos, whose front serves the same methods (docs/cluster.md §6).
/// </summary>
public sealed class BulkCallGate
{
    /// <summary>The default of <see cref="AggregatorOptions.MaxBulkCallsPerSite"/>: 2 (honest agents make one at a time).</summary>
    public const int DefaultLimitPerSite = 2;

    /// <summary><see cref="Methods"/> as routing matches a path to them: case-insensitively (a trailing slash is trimmed before).</summary>
    private static readonly Dictionary<string, string> RoutedPaths = new(BulkMethods(), StringComparer.OrdinalIgnoreCase);

    private readonly ConcurrentDictionary<string, Counter> _sites = new(StringComparer.Ordinal);

    /// <summary>Creates the gate.</summary>
    /// <param name="limitPerSite">Bulk calls one site may have in flight at once (at least 1).</param>
    public BulkCallGate(int limitPerSite)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limitPerSite, 1);
        LimitPerSite = limitPerSite;
    }

    /// <summary>
    /// The bulk unary methods by request path (<c>/securefed.v1.Aggregation/ShareKeys</c>, <c>…/Unmask</c>), derived from
    /// the generated service descriptor: the unary methods whose request type is <see cref="Wire.V1.ShareKeysRequest"/>
    /// or <see cref="Wire.V1.UnmaskResponseMessage"/>; the value is the method's name.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Methods { get; } = BulkMethods();

    /// <summary>Bulk calls one site may have in flight at once.</summary>
    public int LimitPerSite { get; }

    /// <summary><paramref name="site"/>'s bulk calls in flight here right now.</summary>
    public int InFlight(string site)
    {
        ArgumentNullException.ThrowIfNull(site);
        return _sites.TryGetValue(site, out Counter? count) ? Volatile.Read(ref count.Value) : 0;
    }

    /// <summary>
    /// Takes one of <paramref name="site"/>'s <see cref="LimitPerSite"/> places, or returns null at once when the site
    /// already has that many calls in flight. Disposing the result gives the place back (once).
    /// </summary>
    public IDisposable? TryEnter(string site)
    {
        ArgumentNullException.ThrowIfNull(site);
        Counter count = _sites.GetOrAdd(site, _ => new Counter());
        if (Interlocked.Increment(ref count.Value) > LimitPerSite)
        {
            Interlocked.Decrement(ref count.Value);
            return null;
        }

        return new Place(count);
    }

    /// <summary>The refusal's message: names the site, the method and the limit.</summary>
    public string RefusalMessage(string site, string method) => string.Create(CultureInfo.InvariantCulture,
        $"{method}: site '{site}' already has {LimitPerSite} ShareKeys/Unmask calls in flight (the limit per site); refused before reading the request, retry when one has finished");

    /// <summary>
    /// Adds the gate to <paramref name="app"/>'s pipeline (call it after <c>UseRouting</c>, which selects the endpoint
    /// without reading the body, so that the call is known by its routed method: <see cref="BulkMethod"/>): a POST for one of
    /// <see cref="Methods"/> from an identified site takes a place for as long as the rest of the pipeline runs on it
    /// (given back however it ends: completed, failed, aborted or cancelled); a request over the limit is answered at
    /// once with a gRPC trailers-only response of status RESOURCE_EXHAUSTED and <see cref="RefusalMessage"/>.
    /// </summary>
    /// <param name="app">The application's pipeline.</param>
    /// <param name="gate">The gate.</param>
    /// <param name="manifest">The federation manifest of the kit the service identifies callers with.</param>
    /// <param name="logger">Where refusals are logged.</param>
    /// <param name="audit">
    /// Called with the caller (its site, and the silo that forwarded the call if one did) and the message of each refusal
    /// (the aggregator counts and audits it); returns whether it is also logged (false beyond the caller's share of audit
    /// lines). Null: every refusal is logged.
    /// </param>
    public static void UseBulkCallGate(IApplicationBuilder app, BulkCallGate gate, FederationManifest manifest, ILogger logger, Func<CallerIdentity, string, bool>? audit = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(gate);
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(logger);
        app.Use(async (context, next) =>
        {
            if (!HttpMethods.IsPost(context.Request.Method) || BulkMethod(context) is not string method)
            {
                await next(context).ConfigureAwait(false);
                return;
            }

            CallerIdentity caller = ForwardedIdentity.Decide(context.Connection.ClientCertificate,
                Single(context.Request.Headers[ForwardedIdentity.SiteHeader]), Single(context.Request.Headers[ForwardedIdentity.SiloHeader]), manifest);
            if (caller.Site is not string site)
            {
                await next(context).ConfigureAwait(false);
                return;
            }

            IDisposable? place = gate.TryEnter(site);
            if (place is null)
            {
                string message = gate.RefusalMessage(site, method);
                if (audit?.Invoke(caller, message) ?? true)
                {
                    Log.BulkCallRefused(logger, site, method, gate.LimitPerSite);
                }

                RefuseTrailersOnly(context.Response, StatusCode.ResourceExhausted, message);
                return;
            }

            try
            {
                await next(context).ConfigureAwait(false);
            }
            finally
            {
                place.Dispose();
            }
        });
    }

    /// <summary>
    /// The name of the bulk method (<see cref="Methods"/>) <paramref name="context"/>'s request is for, or null. When routing
    /// has selected an endpoint, it is the endpoint's gRPC method (<see cref="GrpcMethodMetadata"/>), however the path was
    /// spelled; an endpoint that is not a gRPC method is not a bulk call. Without an endpoint (the gate placed before routing,
    /// or no route matched) the path is matched as routing would match it: case-insensitively, a trailing slash ignored.
    /// </summary>
    /// <param name="context">The request's context.</param>
    public static string? BulkMethod(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        string? name;
        if (context.GetEndpoint() is Endpoint endpoint)
        {
            return endpoint.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method is IMethod grpc && Methods.TryGetValue(grpc.FullName, out name) ? name : null;
        }

        string path = context.Request.Path.Value ?? "";
        if (path.Length > 1 && path[^1] == '/')
        {
            path = path[..^1];
        }

        return RoutedPaths.TryGetValue(path, out name) ? name : null;
    }

    /// <summary>
    /// Percent-encodes a grpc-message value as the gRPC HTTP/2 protocol requires: UTF-8, every byte outside printable
    /// ASCII (0x20–0x7E) and '%' as %XX.
    /// </summary>
    internal static string PercentEncode(string message)
    {
        var encoded = new StringBuilder(message.Length);
        foreach (byte b in Encoding.UTF8.GetBytes(message))
        {
            if (b is >= 0x20 and <= 0x7E && b != (byte)'%')
            {
                encoded.Append((char)b);
            }
            else
            {
                encoded.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return encoded.ToString();
    }

    /// <summary>A gRPC error without a body ("trailers-only"): HTTP 200, application/grpc, grpc-status and grpc-message as headers.</summary>
    private static void RefuseTrailersOnly(HttpResponse response, StatusCode code, string message)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)code).ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = PercentEncode(message);
    }

    private static string? Single(Microsoft.Extensions.Primitives.StringValues values) => values.Count == 0 ? null : values[0];

    private static Dictionary<string, string> BulkMethods()
    {
        ServiceDescriptor service = Wire.V1.Aggregation.Descriptor;
        var bulk = new HashSet<MessageDescriptor> { Wire.V1.ShareKeysRequest.Descriptor, Wire.V1.UnmaskResponseMessage.Descriptor };
        var methods = service.Methods
            .Where(m => !m.IsClientStreaming && !m.IsServerStreaming && bulk.Contains(m.InputType))
            .ToDictionary(m => $"/{service.FullName}/{m.Name}", m => m.Name, StringComparer.Ordinal);
        if (methods.Count != bulk.Count)
        {
            throw new InvalidOperationException($"expected one unary method per bulk request type in {service.FullName}, found {methods.Count}");
        }

        return methods;
    }

    /// <summary>A site's count of calls in flight.</summary>
    private sealed class Counter
    {
        public int Value;
    }

    /// <summary>One place, given back on the first <see cref="Dispose"/>.</summary>
    private sealed class Place(Counter count) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                Interlocked.Decrement(ref count.Value);
            }
        }
    }
}
