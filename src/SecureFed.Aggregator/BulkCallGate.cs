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
/// Bounds how many of one site's gRPC calls are in flight at this process at once, before any of their bodies is read
/// (threat-model/README.md §7, docs/PROTOCOL.md §3 "Refusals"): every call (a request grpc-dotnet may buffer up to the
/// 4 MiB message limit before the service runs, or a long-poll) at most <see cref="CallLimitPerSite"/> per site, and of
/// those the bulk unary calls (<see cref="Methods"/>: <c>ShareKeys</c> and <c>Unmask</c>, whose honest requests are the
/// large ones) at most <see cref="LimitPerSite"/>; so a site makes this process hold at most that many 4 MiB request
/// buffers, however many connections and HTTP/2 streams it opens. As ASP.NET Core middleware (<see cref="UseBulkCallGate"/>,
/// after routing, before the endpoint) it refuses a further call with RESOURCE_EXHAUSTED before its body is read. It knows
/// a bulk call by the gRPC method of the endpoint routing selected (<see cref="BulkMethod"/>), not by the spelling of the
/// request's path, which routing matches case-insensitively and with or without a trailing slash. The caller is identified
/// by the service's own rule (<see cref="ForwardedIdentity.Decide"/>): a call a silo of the aggregator cluster forwards with
/// the aggregator's certificate counts against the site it names, so a site's calls at the coordinator are bounded however
/// many silos forward them. A call to the agent-facing service whose caller that rule refuses (no site certificate, a revoked
/// or unknown one, or a site's certificate with the forwarding header) is refused here with the rule's status and reason,
/// before its body is read, so it holds no request buffer and is not counted; calls to other endpoints (health checks) pass.
/// Public for the aggregator cluster's slice silos, whose front serves the same methods (docs/cluster.md §6).
/// </summary>
public sealed class BulkCallGate
{
    /// <summary>The default of <see cref="AggregatorOptions.MaxBulkCallsPerSite"/>: 2 (honest agents make one at a time).</summary>
    public const int DefaultLimitPerSite = 2;

    /// <summary>
    /// The calls an honest agent may have in flight at one process at once, at most: its <c>AwaitRound</c> long-poll, a
    /// stage's long-poll, a <c>DownloadModel</c> or <c>GetStatus</c>, one masked-input upload (an agent uploads the slices
    /// one silo hosts one after another), and one each for a retried call and upload whose abandoned attempt the server
    /// has not yet seen end. A <c>ReportProgress</c> is in flight only while the site trains, never with a stage's
    /// long-poll or an upload, so it fits among them. <see cref="AggregatorOptions.MaxCallsPerSite"/> is at least
    /// <see cref="AggregatorOptions.MaxBulkCallsPerSite"/> more than this.
    /// </summary>
    public const int HonestCallsPerSite = 6;

    /// <summary>
    /// The default of <see cref="AggregatorOptions.MaxCallsPerSite"/>: 16, twice <see cref="DefaultLimitPerSite"/> +
    /// <see cref="HonestCallsPerSite"/>.
    /// </summary>
    public const int DefaultCallLimitPerSite = 16;

    /// <summary><see cref="Methods"/> as routing matches a path to them: case-insensitively (a trailing slash is trimmed before).</summary>
    private static readonly Dictionary<string, string> RoutedPaths = new(BulkMethods(), StringComparer.OrdinalIgnoreCase);

    private readonly ConcurrentDictionary<string, Counter> _sites = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Counter> _calls = new(StringComparer.Ordinal);

    /// <summary>Creates the gate.</summary>
    /// <param name="limitPerSite">Bulk calls one site may have in flight at once (at least 1).</param>
    /// <param name="callLimitPerSite">Calls of any method one site may have in flight at once (at least <paramref name="limitPerSite"/>).</param>
    public BulkCallGate(int limitPerSite, int callLimitPerSite = DefaultCallLimitPerSite)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limitPerSite, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(callLimitPerSite, limitPerSite);
        LimitPerSite = limitPerSite;
        CallLimitPerSite = callLimitPerSite;
    }

    /// <summary>
    /// The bulk unary methods by request path (<c>/securefed.v1.Aggregation/ShareKeys</c>, <c>…/Unmask</c>), derived from
    /// the generated service descriptor: the unary methods whose request type is <see cref="Wire.V1.ShareKeysRequest"/>
    /// or <see cref="Wire.V1.UnmaskResponseMessage"/>; the value is the method's name.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Methods { get; } = BulkMethods();

    /// <summary>Bulk calls one site may have in flight at once.</summary>
    public int LimitPerSite { get; }

    /// <summary>Calls of any method (bulk ones included) one site may have in flight at once.</summary>
    public int CallLimitPerSite { get; }

    /// <summary><paramref name="site"/>'s bulk calls in flight here right now.</summary>
    public int InFlight(string site)
    {
        ArgumentNullException.ThrowIfNull(site);
        return _sites.TryGetValue(site, out Counter? count) ? Volatile.Read(ref count.Value) : 0;
    }

    /// <summary><paramref name="site"/>'s calls of any method (bulk ones included) in flight here right now.</summary>
    public int CallsInFlight(string site)
    {
        ArgumentNullException.ThrowIfNull(site);
        return _calls.TryGetValue(site, out Counter? count) ? Volatile.Read(ref count.Value) : 0;
    }

    /// <summary>
    /// Takes one of <paramref name="site"/>'s <see cref="LimitPerSite"/> places for bulk calls, or returns null at once when
    /// the site already has that many bulk calls in flight. Disposing the result gives the place back (once).
    /// </summary>
    public IDisposable? TryEnter(string site) => TryEnter(_sites, site, LimitPerSite);

    /// <summary>
    /// Takes one of <paramref name="site"/>'s <see cref="CallLimitPerSite"/> places for calls of any method, or returns null
    /// at once when the site already has that many calls in flight. Disposing the result gives the place back (once).
    /// </summary>
    public IDisposable? TryEnterCall(string site) => TryEnter(_calls, site, CallLimitPerSite);

    /// <summary>The bulk refusal's message: names the site, the method and the limit.</summary>
    public string RefusalMessage(string site, string method) => string.Create(CultureInfo.InvariantCulture,
        $"{method}: site '{site}' already has {LimitPerSite} ShareKeys/Unmask calls in flight (the limit per site); refused before reading the request, retry when one has finished");

    /// <summary>The refusal's message for a call over <see cref="CallLimitPerSite"/>: names the site, the method and the limit.</summary>
    public string CallRefusalMessage(string site, string method) => string.Create(CultureInfo.InvariantCulture,
        $"{method}: site '{site}' already has {CallLimitPerSite} calls in flight at this aggregator process (the limit per site, SecureFed:MaxCallsPerSite); refused before reading the request, retry when one has finished");

    /// <summary>
    /// Adds the gate to <paramref name="app"/>'s pipeline (call it after <c>UseRouting</c>, which selects the endpoint
    /// without reading the body, so that the call is known by its routed method: <see cref="BulkMethod"/>): every POST (a
    /// gRPC call of any method) from an identified site takes one of its <see cref="CallLimitPerSite"/> places, and one for
    /// <see cref="Methods"/> also one of its <see cref="LimitPerSite"/> bulk places, for as long as the rest of the pipeline
    /// runs on it (given back however it ends: completed, failed, aborted or cancelled); a request over either limit is
    /// answered at once with a gRPC trailers-only response of status RESOURCE_EXHAUSTED and <see cref="CallRefusalMessage"/>
    /// or <see cref="RefusalMessage"/>. A call to the agent-facing service (<see cref="IsAgentServiceCall"/>) whose caller
    /// <see cref="ForwardedIdentity.Decide"/> refuses is answered at once, trailers-only, with that refusal's status and reason.
    /// </summary>
    /// <param name="app">The application's pipeline.</param>
    /// <param name="gate">The gate.</param>
    /// <param name="manifest">The federation manifest of the kit the service identifies callers with.</param>
    /// <param name="logger">Where refusals are logged.</param>
    /// <param name="audit">
    /// Called with the caller (<see cref="CallerIdentity.Caller"/>: its site, or for a refused caller the name it is refused
    /// under; and the silo that forwarded the call if one did), the refusal's status and reason
    /// (<see cref="Operations.RefusalReasons.TooManyCalls"/> or <see cref="Operations.RefusalReasons.TooManyBulkCalls"/> with
    /// RESOURCE_EXHAUSTED; a refused caller's <see cref="CallerIdentity.Code"/> and <see cref="CallerIdentity.Category"/>; for a
    /// request the binder refused before parsing it, <see cref="Operations.RefusalReasons.OversizedRequest"/> or
    /// <see cref="Operations.RefusalReasons.MalformedRequest"/> with the binder's status, <see cref="PreParseRefusal"/>) and its
    /// message (the aggregator counts and audits it); returns whether it is also logged (false beyond the caller's share of
    /// audit lines). Null: every refusal is logged.
    /// </param>
    public static void UseBulkCallGate(IApplicationBuilder app, BulkCallGate gate, FederationManifest manifest, ILogger logger, Func<CallerIdentity, StatusCode, string, string, bool>? audit = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(gate);
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(logger);
        app.Use(async (context, next) =>
        {
            if (!HttpMethods.IsPost(context.Request.Method))
            {
                await next(context).ConfigureAwait(false);
                return;
            }

            CallerIdentity caller = ForwardedIdentity.Decide(context.Connection.ClientCertificate,
                Single(context.Request.Headers[ForwardedIdentity.SiteHeader]), Single(context.Request.Headers[ForwardedIdentity.SiloHeader]), manifest);
            if (caller.Site is not string site)
            {
                if (!IsAgentServiceCall(context))
                {
                    await next(context).ConfigureAwait(false);
                    return;
                }

                // The service refuses such a caller by the same rule, but only once grpc-dotnet has buffered the request (up to
                // 4 MiB); uncounted, a site could make this process hold one buffer per stream it opens (e.g. its own
                // certificate with the forwarding header). Refused here, before the body is read, with the service's status
                // and reason.
                string refusedMethod = BulkMethod(context) ?? CallMethod(context);
                if (audit?.Invoke(caller, caller.Code, caller.Category!, caller.Reason!) ?? true)
                {
                    Log.CallerRefused(logger, caller.Caller, refusedMethod, caller.Reason!);
                }

                RefuseTrailersOnly(context.Response, caller.Code, caller.Reason!);
                return;
            }

            string? bulk = BulkMethod(context);
            IDisposable? call = gate.TryEnterCall(site);
            if (call is null)
            {
                string method = bulk ?? CallMethod(context);
                string message = gate.CallRefusalMessage(site, method);
                if (audit?.Invoke(caller, StatusCode.ResourceExhausted, Operations.RefusalReasons.TooManyCalls, message) ?? true)
                {
                    Log.CallRefused(logger, site, method, gate.CallLimitPerSite);
                }

                RefuseTrailersOnly(context.Response, StatusCode.ResourceExhausted, message);
                return;
            }

            // A refusal the request binder makes before the body is parsed (CheckedRequestBinder) is audited here, where the
            // caller is known, within its share of refusal lines as the gate's own.
            PreParseRefusal.Slot preParse = PreParseRefusal.Begin();
            try
            {
                if (bulk is null)
                {
                    await next(context).ConfigureAwait(false);
                    return;
                }

                IDisposable? place = gate.TryEnter(site);
                if (place is null)
                {
                    string message = gate.RefusalMessage(site, bulk);
                    if (audit?.Invoke(caller, StatusCode.ResourceExhausted, Operations.RefusalReasons.TooManyBulkCalls, message) ?? true)
                    {
                        Log.BulkCallRefused(logger, site, bulk, gate.LimitPerSite);
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
            }
            finally
            {
                call.Dispose();
                if (preParse.Message is null && RefusedOverMessageCap(context.Response))
                {
                    // gRPC itself refuses a message over the 4 MiB cap before the binder sees a byte of it (grpc-dotnet's
                    // MaxReceiveMessageSize); read from the call's status, it is audited as the binder's own refusals are.
                    preParse.Record(StatusCode.ResourceExhausted, Operations.RefusalReasons.OversizedRequest, OverMessageCapMessage(bulk ?? CallMethod(context)));
                }

                if (preParse.Message is string refused && (audit?.Invoke(caller, preParse.Code, preParse.Category!, refused) ?? true))
                {
                    Log.RefusedBeforeParsing(logger, site, bulk ?? CallMethod(context), refused);
                }
            }
        });
    }

    /// <summary>
    /// The status detail grpc-dotnet (2.x) answers a request message over <c>MaxReceiveMessageSize</c> with, before the
    /// message is handed to the request binder.
    /// </summary>
    internal const string GrpcOverMessageCapDetail = "Received message exceeds the maximum configured message size.";

    /// <summary>
    /// The audited reason of a request refused by gRPC for its size (<see cref="RefusedOverMessageCap"/>): the method and the
    /// cap, where gRPC's own answer names neither.
    /// </summary>
    /// <param name="method">The method's name.</param>
    internal static string OverMessageCapMessage(string method) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{method}: a request message is over the {AggregatorHost.MaxMessageBytes}-byte limit of every message; refused by gRPC before it was read whole ({GrpcOverMessageCapDetail})");

    /// <summary>
    /// Whether the call <paramref name="response"/> answers ended with gRPC's refusal of a request message over the size
    /// cap: status RESOURCE_EXHAUSTED with <see cref="GrpcOverMessageCapDetail"/>, in the response's headers (a
    /// trailers-only response, the usual case: nothing was sent before the request was read) or in its trailers (a
    /// streaming call whose later message was over the cap after the response had started).
    /// </summary>
    /// <param name="response">The call's response, after the pipeline has run.</param>
    internal static bool RefusedOverMessageCap(HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (IsOverMessageCap(response.Headers))
        {
            return true;
        }

        IHeaderDictionary? trailers = response.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseTrailersFeature>()?.Trailers;
        return trailers is not null && IsOverMessageCap(trailers);
    }

    private static bool IsOverMessageCap(IHeaderDictionary headers) =>
        string.Equals(Single(headers["grpc-status"]), ((int)StatusCode.ResourceExhausted).ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
        && string.Equals(Uri.UnescapeDataString(Single(headers["grpc-message"]) ?? ""), GrpcOverMessageCapDetail, StringComparison.Ordinal);

    /// <summary>
    /// The name of the gRPC method <paramref name="context"/>'s request is for, for a refusal's message: the routed endpoint's
    /// method name, or the last segment of the request's path when routing selected no gRPC method.
    /// </summary>
    /// <param name="context">The request's context.</param>
    public static string CallMethod(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method is IMethod grpc)
        {
            return grpc.Name;
        }

        string path = (context.Request.Path.Value ?? "").TrimEnd('/');
        return path[(path.LastIndexOf('/') + 1)..];
    }

    /// <summary>
    /// Whether <paramref name="context"/>'s request is for a method of the agent-facing service (<c>securefed.v1.Aggregation</c>,
    /// which identifies every caller before anything else): the routed endpoint's gRPC service, or without an endpoint the
    /// path's first segment as routing would match it (case-insensitively). Other endpoints (gRPC health checks) are not.
    /// </summary>
    /// <param name="context">The request's context.</param>
    public static bool IsAgentServiceCall(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.GetEndpoint() is Endpoint endpoint)
        {
            return endpoint.Metadata.GetMetadata<GrpcMethodMetadata>()?.Method is IMethod grpc
                && string.Equals(grpc.ServiceName, Wire.V1.Aggregation.Descriptor.FullName, StringComparison.Ordinal);
        }

        return (context.Request.Path.Value ?? "").StartsWith($"/{Wire.V1.Aggregation.Descriptor.FullName}/", StringComparison.OrdinalIgnoreCase);
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

    private static Place? TryEnter(ConcurrentDictionary<string, Counter> sites, string site, int limit)
    {
        ArgumentNullException.ThrowIfNull(site);
        Counter count = sites.GetOrAdd(site, _ => new Counter());
        if (Interlocked.Increment(ref count.Value) > limit)
        {
            Interlocked.Decrement(ref count.Value);
            return null;
        }

        return new Place(count);
    }

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
