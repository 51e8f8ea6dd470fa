using System.Collections.Concurrent;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Cluster.Lease;
using SecureFed.Federation;
using SecureFed.Wire.V1;

namespace SecureFed.Cluster.Front;

/// <summary>
/// Forwards an agent's call, received by a silo that is not the coordinator, to the current coordinator's agent endpoint
/// over gRPC with mutual TLS (docs/cluster.md §6, "Every silo a front"). The silo authenticates to the coordinator with
/// the aggregator's certificate of its kit and names the site it authenticated from the site's certificate in
/// <see cref="ForwardedIdentity.SiteHeader"/> and itself in <see cref="ForwardedIdentity.SiloHeader"/>; the coordinator's
/// <c>AggregationService</c> makes every check, as for a direct call. The agent's deadline and cancellation go with the
/// call; the coordinator's status and detail come back unchanged; streams are passed on one message at a time, never
/// buffered whole. A coordinator that cannot be located or reached is answered Unavailable naming the lease holder, its
/// endpoint and the cause, and the lease row is read again on the next call; those answers are logged within the site's
/// share of lines (<see cref="FrontRefusalLog"/>: a site looping on the front while the coordinator is unreachable gets
/// a burst of lines, then one every 10 s, the rest counted in a summary line). One channel, on its own HTTP/2
/// connection, per coordinator endpoint and site: the coordinator's Kestrel gives a connection's flow-control window back
/// only as the service reads request bodies, and an upload waiting there for a slot or for its site's turn is not read,
/// so on one connection shared by every site the waiting uploads of one site took the whole window and stalled every
/// other site's forwarded calls (hostile-site review, session 48); as with direct connections, a site's unread bodies
/// now hold only its own connection.
/// When the front stops (<c>stopping</c>: the host's <c>ApplicationStopping</c>; a standby that took the lease stops its
/// front before the aggregator service binds its address, an operator stops a slice silo), a forwarded long poll (a call
/// that waits for the coordinator's state to change: <c>AwaitRound</c>, the <c>Await…</c> stage queries) is ended at once
/// and answered Unavailable naming the stopping silo, so the agent asks again elsewhere and loses nothing. Every other
/// forwarded call (a submission, the status, a model download, a whole-vector upload) is left to finish for up to
/// <see cref="StopGrace"/>: such a call needs milliseconds at the coordinator, and one the coordinator has taken but whose
/// answer the front cut would come back to the agent as Unavailable, its retry then a duplicate at best and, once the
/// round moved on, refused as stale. Only one still unanswered <see cref="StopGrace"/> after the stop began is ended,
/// Unavailable. Before either, Kestrel's stop waited for every call until the host's shutdown timeout (30 s) and then cut
/// its connection.
/// The forwarder counts the gRPC message bytes it passes on (<see cref="RequestBytesForwarded"/>,
/// <see cref="ResponseBytesReturned"/>) and logs the running totals at Debug after every call.
/// </summary>
public sealed partial class CoordinatorForwarder : IDisposable
{
    private readonly ConcurrentDictionary<(string Endpoint, string Site), Lazy<(SocketsHttpHandler Handler, GrpcChannel Channel)>> _channels = new();
    private readonly PartyKit _kit;
    private readonly ICoordinatorLocator _locator;
    private readonly ILogger _logger;
    private readonly FrontRefusalLog _unavailable;
    private readonly string _federation;
    private readonly TimeProvider _time;
    private long _forwarded;
    private long _requestBytes;
    private long _responseBytes;

    /// <summary>
    /// A forwarder for the silo named <paramref name="siloName"/>, presenting the certificate of <paramref name="kit"/> (the
    /// aggregator's); <paramref name="time"/> (the system clock by default) refills the sites' shares of Unavailable lines and
    /// times <see cref="StopGrace"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The kit is not the aggregator's, or its certificate does not allow TLS client authentication.</exception>
    public CoordinatorForwarder(string federation, PartyKit kit, string siloName, ICoordinatorLocator locator, ILogger logger, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(federation);
        ArgumentNullException.ThrowIfNull(kit);
        ArgumentException.ThrowIfNullOrEmpty(siloName);
        ArgumentNullException.ThrowIfNull(locator);
        ArgumentNullException.ThrowIfNull(logger);
        if (ClusterTls.Problem(kit) is string problem)
        {
            throw new ArgumentException(problem, nameof(kit));
        }

        _federation = federation;
        SiloName = siloName;
        _locator = locator;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _unavailable = FrontRefusalLog.ForUnavailable(logger, _time);
        _kit = kit;
    }

    /// <summary>
    /// How long a forwarded call that is not a long poll may still run once the front's stop has begun (10 s): then it is
    /// ended, Unavailable. Well below the host's shutdown timeout (30 s by default), so the stop never waits for it longer
    /// than this, and Kestrel never has to cut its connection; a long poll is ended at once.
    /// </summary>
    public static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);

    /// <summary>This silo's name, sent in <see cref="ForwardedIdentity.SiloHeader"/>.</summary>
    public string SiloName { get; }

    /// <summary>Calls forwarded (answered by the coordinator or not).</summary>
    public long CallsForwarded => Interlocked.Read(ref _forwarded);

    /// <summary>
    /// The gRPC message bytes of the agents' requests this silo has sent on to the coordinator: for every request message
    /// passed to the coordinator's channel, its protobuf size plus the 5-byte gRPC message prefix (<see cref="FrameBytes"/>;
    /// the unit of the coordinator's count of requests forwarded to it, before HTTP/2 and TLS framing). A message is counted
    /// when it is handed to the call, so a call that fails on the way may be counted here and not at the coordinator.
    /// </summary>
    public long RequestBytesForwarded => Interlocked.Read(ref _requestBytes);

    /// <summary>The gRPC message bytes (protobuf plus the 5-byte prefix) of the coordinator's answers this silo has passed back to agents.</summary>
    public long ResponseBytesReturned => Interlocked.Read(ref _responseBytes);

    /// <summary>A gRPC message's bytes on the wire without compression: its protobuf size plus the 5-byte length prefix.</summary>
    public static long FrameBytes(IMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return message.CalculateSize() + 5L;
    }

    /// <summary>
    /// Forwards a unary call for <paramref name="site"/>: <paramref name="call"/> sends <paramref name="request"/>. When
    /// <paramref name="stopping"/> is cancelled first, ended, Unavailable: at once for a long poll (<paramref name="poll"/>),
    /// otherwise only if still unanswered <see cref="StopGrace"/> later.
    /// </summary>
    internal async Task<TResponse> UnaryAsync<TResponse>(string site, ServerCallContext context, IMessage request, Func<Aggregation.AggregationClient, CallOptions, AsyncUnaryCall<TResponse>> call,
        bool poll = false, CancellationToken stopping = default)
        where TResponse : IMessage
    {
        using var ended = new CallEnd(context.CancellationToken, stopping, poll ? TimeSpan.Zero : StopGrace, _time);
        Target target = await TargetAsync(site, context, stopping, ended.Token).ConfigureAwait(false);
        try
        {
            CallOptions options = Options(site, context, ended.Token);
            Sent(request);
            using AsyncUnaryCall<TResponse> pending = call(target.Client, options);
            TResponse response = await pending.ResponseAsync.ConfigureAwait(false);
            Returned(response);
            return response;
        }
        catch (Exception ex) when (IsStop(ex, context, stopping))
        {
            throw Stopped(site, target, poll);
        }
        catch (RpcException ex)
        {
            throw Translate(site, target, ex);
        }
        finally
        {
            Counted(context, site);
        }
    }

    /// <summary>
    /// Forwards a server-streaming call (the model download, a stored model read and sent: no wait for the coordinator's
    /// state) one message at a time; ended, Unavailable, when still running <see cref="StopGrace"/> after
    /// <paramref name="stopping"/> is cancelled.
    /// </summary>
    internal async Task ServerStreamAsync<TResponse>(string site, ServerCallContext context, IMessage request, Func<Aggregation.AggregationClient, CallOptions, AsyncServerStreamingCall<TResponse>> call, IServerStreamWriter<TResponse> writer,
        CancellationToken stopping = default)
        where TResponse : IMessage
    {
        using var ended = new CallEnd(context.CancellationToken, stopping, StopGrace, _time);
        Target target = await TargetAsync(site, context, stopping, ended.Token).ConfigureAwait(false);
        try
        {
            CallOptions options = Options(site, context, ended.Token);
            Sent(request);
            using AsyncServerStreamingCall<TResponse> pending = call(target.Client, options);
            while (await pending.ResponseStream.MoveNext(ended.Token).ConfigureAwait(false))
            {
                Returned(pending.ResponseStream.Current);
                await writer.WriteAsync(pending.ResponseStream.Current, ended.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (IsStop(ex, context, stopping))
        {
            throw Stopped(site, target, poll: false);
        }
        catch (RpcException ex)
        {
            throw Translate(site, target, ex);
        }
        finally
        {
            Counted(context, site);
        }
    }

    /// <summary>
    /// Forwards a whole-vector masked-input upload (protocol version 3): <paramref name="first"/>, then each chunk as it
    /// arrives from the agent (at most one chunk in this process at a time). When the coordinator ends the call early
    /// (a refusal), the rest of the agent's stream is not read and the coordinator's status is the answer. Ended,
    /// Unavailable, when still running <see cref="StopGrace"/> after <paramref name="stopping"/> is cancelled (the agent
    /// uploads again; an identical upload the coordinator took is a duplicate).
    /// </summary>
    internal async Task<Ack> UploadAsync(string site, ServerCallContext context, MaskedInputChunk first, IAsyncStreamReader<MaskedInputChunk> rest, CancellationToken stopping = default)
    {
        using var ended = new CallEnd(context.CancellationToken, stopping, StopGrace, _time);
        Target target = await TargetAsync(site, context, stopping, ended.Token).ConfigureAwait(false);
        try
        {
            using AsyncClientStreamingCall<MaskedInputChunk, Ack> pending = target.Client.UploadMaskedInput(Options(site, context, ended.Token));
            bool open = await WriteAsync(pending, first).ConfigureAwait(false);
            while (open && await rest.MoveNext(ended.Token).ConfigureAwait(false))
            {
                open = await WriteAsync(pending, rest.Current).ConfigureAwait(false);
            }

            if (open)
            {
                await pending.RequestStream.CompleteAsync().ConfigureAwait(false);
            }

            Ack ack = await pending.ResponseAsync.ConfigureAwait(false);
            Returned(ack);
            return ack;
        }
        catch (Exception ex) when (IsStop(ex, context, stopping))
        {
            throw Stopped(site, target, poll: false);
        }
        catch (RpcException ex)
        {
            throw Translate(site, target, ex);
        }
        finally
        {
            Counted(context, site);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (Lazy<(SocketsHttpHandler Handler, GrpcChannel Channel)> channel in _channels.Values.Where(c => c.IsValueCreated))
        {
            channel.Value.Channel.Dispose();
            channel.Value.Handler.Dispose();
        }

        _unavailable.Dispose(); // logs the pending summaries
    }

    private async Task<bool> WriteAsync(AsyncClientStreamingCall<MaskedInputChunk, Ack> call, MaskedInputChunk chunk)
    {
        try
        {
            Sent(chunk);
            await call.RequestStream.WriteAsync(chunk).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is RpcException or InvalidOperationException)
        {
            // The call already ended (the coordinator answered, or the connection failed): its status is the response's.
            return false;
        }
    }

    private void Sent(IMessage request) => Interlocked.Add(ref _requestBytes, FrameBytes(request));

    private void Returned(IMessage response) => Interlocked.Add(ref _responseBytes, FrameBytes(response));

    private void Counted(ServerCallContext context, string site)
        => Log.Forwarded(_logger, context.Method, site, CallsForwarded, RequestBytesForwarded, ResponseBytesReturned);

    /// <summary>
    /// Whether <paramref name="ex"/> is the end of a forwarded call by the front's stop: the call cancelled (by gRPC's status
    /// or a cancelled wait) while <paramref name="stopping"/> is, and not by the agent.
    /// </summary>
    private static bool IsStop(Exception ex, ServerCallContext context, CancellationToken stopping)
        => stopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested
            && ex is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled };

    private RpcException Stopped(string site, Target target, bool poll)
        => Unavailable(site, poll
            ? $"silo {SiloName} is stopping: the call it was forwarding to the coordinator {Describe(target.Lease)} was ended before the coordinator answered; retry"
            : string.Create(CultureInfo.InvariantCulture,
                $"silo {SiloName} is stopping: the call it was forwarding to the coordinator {Describe(target.Lease)} had no answer {StopGrace.TotalSeconds:0.#} s after the stop began and was ended; retry"));

    private CallOptions Options(string site, ServerCallContext context, CancellationToken ended)
    {
        Interlocked.Increment(ref _forwarded);
        var headers = new Metadata
        {
            { ForwardedIdentity.SiteHeader, site },
            { ForwardedIdentity.SiloHeader, SiloName },
        };
        DateTime? deadline = context.Deadline == DateTime.MaxValue ? null : context.Deadline;
        return new CallOptions(headers, deadline, ended);
    }

    private async Task<Target> TargetAsync(string site, ServerCallContext context, CancellationToken stopping, CancellationToken ended)
    {
        CoordinatorLeaseRecord? lease;
        try
        {
            lease = await _locator.LocateAsync(ended).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw Unavailable(site, $"silo {SiloName} is stopping: the call was ended before the coordinator of federation '{_federation}' was located; retry");
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException or InvalidOperationException)
        {
            throw Unavailable(site, $"silo {SiloName} could not read the coordinator lease of federation '{_federation}' from the cluster's database: {ex.Message}");
        }

        if (lease is null)
        {
            throw Unavailable(site, $"no silo has taken the coordinator lease of federation '{_federation}' yet; silo {SiloName} has no coordinator to forward to");
        }

        if (string.Equals(lease.Holder, SiloName, StringComparison.Ordinal))
        {
            // A standby front whose silo has just taken the lease: its aggregator service starts on this address next.
            _locator.Forget(lease);
            throw Unavailable(site, $"silo {SiloName} has just taken the coordinator lease (epoch {lease.Epoch}) and is starting the aggregator service at this address; retry");
        }

        if (string.IsNullOrEmpty(lease.AgentEndpoint) || !Uri.TryCreate(lease.AgentEndpoint, UriKind.Absolute, out Uri? endpoint))
        {
            _locator.Forget(lease);
            throw Unavailable(site, $"the coordinator {Describe(lease)} has recorded no agent endpoint in the lease row; silo {SiloName} cannot forward to it");
        }

        // A handler (so a connection pool) of the site's own: its calls never share an HTTP/2 connection, and so its
        // connection-level flow-control window, with another site's (see the class remarks).
        var key = (lease.AgentEndpoint.ToLowerInvariant(), site);
        Lazy<(SocketsHttpHandler Handler, GrpcChannel Channel)> lazy = _channels.GetOrAdd(key, _ => new Lazy<(SocketsHttpHandler, GrpcChannel)>(() =>
        {
            SocketsHttpHandler handler = PeerTrust.AggregatorClientHandler(_kit, TimeSpan.FromSeconds(5));
            return (handler, GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
            {
                HttpHandler = handler,
                DisposeHttpClient = false,
                MaxReceiveMessageSize = AggregatorHost.MaxMessageBytes,
                MaxSendMessageSize = AggregatorHost.MaxMessageBytes,
            }));
        }));
        GrpcChannel channel;
        try
        {
            channel = lazy.Value.Channel;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A Lazy keeps the exception of a failed creation for good: forgotten, so the next call tries afresh.
            _channels.TryRemove(new KeyValuePair<(string, string), Lazy<(SocketsHttpHandler, GrpcChannel)>>(key, lazy));
            _locator.Forget(lease);
            throw Unavailable(site, $"silo {SiloName} could not open a channel to the coordinator {Describe(lease)} at {lease.AgentEndpoint}: {ex.GetType().Name}: {ex.Message}");
        }

        return new Target(lease, new Aggregation.AggregationClient(channel));
    }

    private RpcException Translate(string site, Target target, RpcException ex)
    {
        if (ex.StatusCode != StatusCode.Unavailable)
        {
            // The coordinator's answer (or the agent's own deadline or cancellation): status and detail unchanged.
            return new RpcException(new Status(ex.StatusCode, ex.Status.Detail));
        }

        _locator.Forget(target.Lease);
        string cause = ex.Status.DebugException is Exception inner ? $"{ex.Status.Detail} ({inner.GetBaseException().Message})" : ex.Status.Detail;
        return Unavailable(site, $"silo {SiloName} could not reach the coordinator {Describe(target.Lease)} at {target.Lease.AgentEndpoint}: {cause}");
    }

    private RpcException Unavailable(string site, string reason)
    {
        // Within the site's share of lines: a site that loops on this front during a takeover or a database blip does not
        // write a line per call.
        if (_unavailable.MayLog(site, nameof(StatusCode.Unavailable)))
        {
            Log.Unavailable(_logger, site, reason);
        }

        return new RpcException(new Status(StatusCode.Unavailable, reason));
    }

    private static string Describe(CoordinatorLeaseRecord lease)
        => string.Create(CultureInfo.InvariantCulture, $"{lease.Holder} (lease epoch {lease.Epoch}, expiring {lease.ExpiresUtc:O})");

    private sealed record Target(CoordinatorLeaseRecord Lease, Aggregation.AggregationClient Client);

    /// <summary>
    /// The end of one forwarded call: cancelled with the agent's call, and <c>grace</c> after the front's stop begins (at
    /// once for a zero grace), timed on the forwarder's clock.
    /// </summary>
    private sealed class CallEnd : IDisposable
    {
        private readonly CancellationTokenSource _source;
        private readonly TimeSpan _grace;
        private readonly CancellationTokenRegistration _call;
        private readonly CancellationTokenRegistration _stop;

        public CallEnd(CancellationToken call, CancellationToken stopping, TimeSpan grace, TimeProvider time)
        {
            _source = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
            _grace = grace;
            _call = call.Register(static s => ((CallEnd)s!)._source.Cancel(), this);
            _stop = stopping.Register(static s => ((CallEnd)s!).Stopping(), this);
        }

        private void Stopping()
        {
            if (_grace <= TimeSpan.Zero)
            {
                _source.Cancel();
            }
            else
            {
                _source.CancelAfter(_grace);
            }
        }

        public CancellationToken Token => _source.Token;

        public void Dispose()
        {
            // The registrations first: their disposal waits for a callback that is running, so none touches a disposed source.
            _stop.Dispose();
            _call.Dispose();
            _source.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Forwarding a call of {Site} to the coordinator failed: {Reason}")]
        public static partial void Unavailable(ILogger logger, string site, string reason);

        /// <summary>After every forwarded call; <c>bench cluster --agents-via front</c> reads the totals from this line.</summary>
        [LoggerMessage(2, LogLevel.Debug, "Forwarded {Method} for {Site}; this silo's totals: {Calls} calls, forwarded request bytes {RequestBytes}, returned response bytes {ResponseBytes}")]
        public static partial void Forwarded(ILogger logger, string method, string site, long calls, long requestBytes, long responseBytes);
    }
}
