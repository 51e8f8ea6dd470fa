using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using SecureFed.Federation;
using SecureFed.Wire.V1;

namespace SecureFed.Agent;

/// <summary>
/// The agent's connection to the aggregator: mTLS with the site's certificate, trusting only the federation CA and the
/// aggregator listed in the manifest; one Polly pipeline (retry with jitter on transient status codes only, then a
/// circuit breaker); a deadline on every call. Retried submissions are safe: the aggregator deduplicates them.
/// </summary>
public sealed class AggregatorClient : IDisposable
{
    private readonly GrpcChannel[] _channels;
    private readonly Wire.V1.Aggregation.AggregationClient[] _clients;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<(GrpcChannel Channel, Wire.V1.Aggregation.AggregationClient Client)>> _sliceClients = new(StringComparer.OrdinalIgnoreCase);
    private readonly HttpMessageHandler _handler;
    private readonly bool _ownsHandler;
    private readonly ResiliencePipeline _pipeline;
    private readonly TimeSpan _callTimeout;
    private readonly TimeProvider _time;
    private volatile int _current;

    /// <summary>Connects (lazily) to <paramref name="address"/>; retries are counted on <paramref name="telemetry"/> when given.</summary>
    public AggregatorClient(Uri address, PartyKit kit, TimeSpan callTimeout, int maxRetries, TimeProvider? time = null, HttpMessageHandler? handler = null, AgentTelemetry? telemetry = null)
        : this([address ?? throw new ArgumentNullException(nameof(address))], kit, callTimeout, maxRetries, time, handler, telemetry)
    {
    }

    /// <summary>
    /// Connects (lazily) to the aggregator's <paramref name="addresses"/>: every call goes to the endpoint that last
    /// answered (the first at start) and fails over to the next, in order, when it cannot connect or the endpoint does
    /// not serve the call (<see cref="ShouldTryNextEndpoint"/>). Slices of a masked input (protocol version 4) go to the endpoints the round
    /// announcement names (<see cref="UploadMaskedInputSliceAsync"/>), over the same handler.
    /// </summary>
    public AggregatorClient(IReadOnlyList<Uri> addresses, PartyKit kit, TimeSpan callTimeout, int maxRetries, TimeProvider? time = null, HttpMessageHandler? handler = null, AgentTelemetry? telemetry = null)
    {
        ArgumentNullException.ThrowIfNull(addresses);
        ArgumentOutOfRangeException.ThrowIfZero(addresses.Count);
        ArgumentNullException.ThrowIfNull(kit);
        _time = time ?? TimeProvider.System;
        _callTimeout = callTimeout;
        _ownsHandler = handler is null;
        _handler = handler ?? PeerTrust.AggregatorClientHandler(kit, TimeSpan.FromSeconds(10), reason => LastCertificateRejection = reason);
        Endpoints = [.. addresses];
        _channels = [.. addresses.Select(Channel)];
        _clients = [.. _channels.Select(c => new Wire.V1.Aggregation.AggregationClient(c))];
        _pipeline = BuildPipeline(maxRetries, _time, telemetry);
    }

    /// <summary>Why this client last rejected an aggregator's certificate (null if it never did; only with the handler it made itself).</summary>
    public string? LastCertificateRejection { get; private set; }

    /// <summary>The aggregator's endpoints, in failover order.</summary>
    public IReadOnlyList<Uri> Endpoints { get; }

    /// <summary>The endpoint the next call goes to first (the one that last answered).</summary>
    public Uri CurrentEndpoint => Endpoints[_current];

    /// <summary>
    /// True when a control call should move on to the next endpoint: <see cref="StatusCode.Unavailable"/>, raised by the
    /// transport (the endpoint could not be reached) or answered (e.g. by a front of the aggregator cluster that cannot
    /// reach the coordinator, while another endpoint may), or the endpoint answered
    /// <see cref="StatusCode.Unimplemented"/> (a silo of an earlier version that serves slice uploads only;
    /// docs/cluster.md §6). When every endpoint fails so, the last failure goes to the retry pipeline, which starts
    /// again from the endpoint that last answered.
    /// </summary>
    public static bool ShouldTryNextEndpoint(RpcException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception.StatusCode is StatusCode.Unavailable or StatusCode.Unimplemented;
    }

    private GrpcChannel Channel(Uri address) => GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        HttpHandler = _handler,
        DisposeHttpClient = false,
        MaxReceiveMessageSize = 8 * 1024 * 1024,
        MaxSendMessageSize = 8 * 1024 * 1024,
    });

    /// <summary>
    /// Status codes worth retrying: the call may not have reached the aggregator (<see cref="StatusCode.Unavailable"/>),
    /// the transport failed mid-call (grpc-dotnet reports a reset stream or an HTTP/2 protocol error as
    /// <see cref="StatusCode.Internal"/>; the aggregator never answers it on purpose), or it was overloaded.
    /// <see cref="StatusCode.Unknown"/> is not retried: the aggregator answers every anticipated problem, malformed bytes
    /// included, with a specific status, so Unknown means an unhandled exception on the server, which the same request
    /// would hit again.
    /// </summary>
    public static bool IsTransient(StatusCode code) => code is StatusCode.Unavailable or StatusCode.ResourceExhausted or StatusCode.Internal;

    /// <summary>The retry + circuit-breaker pipeline (exposed for tests); each retry is counted on <paramref name="telemetry"/>.</summary>
    public static ResiliencePipeline BuildPipeline(int maxRetries, TimeProvider time, AgentTelemetry? telemetry = null)
    {
        // Cancelled while this agent's own token is not cancelled means the call was cut off elsewhere (the aggregator
        // or the transport reset the stream, e.g. under load); every call is idempotent, so it is retried like a transient.
        Func<Outcome<object>, ResilienceContext, bool> retryable = (outcome, context) => outcome.Exception is RpcException e
            && (IsTransient(e.StatusCode) || (e.StatusCode == StatusCode.Cancelled && !context.CancellationToken.IsCancellationRequested));
        var handle = new PredicateBuilder().Handle<RpcException>(e => IsTransient(e.StatusCode));
        var builder = new ResiliencePipelineBuilder { TimeProvider = time };
        if (maxRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(retryable(args.Outcome, args.Context)),
                MaxRetryAttempts = maxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = TimeSpan.FromSeconds(5),
                OnRetry = args =>
                {
                    telemetry?.Retried(args.Outcome.Exception is RpcException e ? e.StatusCode.ToString() : "error");
                    return ValueTask.CompletedTask;
                },
            });
        }

        builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions
        {
            ShouldHandle = handle,
            FailureRatio = 0.9,
            MinimumThroughput = 20,
            SamplingDuration = TimeSpan.FromSeconds(30),
            BreakDuration = TimeSpan.FromSeconds(5),
        });
        return builder.Build();
    }

    /// <summary>Waits (long-poll, up to <paramref name="wait"/>) for the next round including this site.</summary>
    public Task<RoundAnnouncement> AwaitRoundAsync(AwaitRoundRequest request, TimeSpan wait, CancellationToken cancellationToken)
        => Call((c, o) => c.AwaitRoundAsync(request, o).ResponseAsync, wait, cancellationToken);

    /// <summary>Declines the round.</summary>
    public Task<Ack> DeclineRoundAsync(DeclineRoundRequest request, CancellationToken cancellationToken)
        => Call((c, o) => c.DeclineRoundAsync(request, o).ResponseAsync, _callTimeout, cancellationToken);

    /// <summary>Says the site is still training (docs/PROTOCOL.md "Training progress"); each attempt within <paramref name="timeout"/>.</summary>
    public Task<Ack> ReportProgressAsync(ProgressReport request, TimeSpan timeout, CancellationToken cancellationToken)
        => Call((c, o) => c.ReportProgressAsync(request, o).ResponseAsync, timeout, cancellationToken);

    /// <summary>Sends the key advertisement.</summary>
    public Task<Ack> AdvertiseKeysAsync(AdvertiseKeysRequest request, CancellationToken cancellationToken)
        => Call((c, o) => c.AdvertiseKeysAsync(request, o).ResponseAsync, _callTimeout, cancellationToken);

    /// <summary>Waits for the advertisements of this site's neighbours.</summary>
    public Task<AdvertisementSet> AwaitAdvertisementsAsync(StageQuery query, TimeSpan wait, CancellationToken cancellationToken)
        => Call((c, o) => c.AwaitAdvertisementsAsync(query, o).ResponseAsync, wait, cancellationToken);

    /// <summary>Sends the encrypted shares.</summary>
    public Task<Ack> ShareKeysAsync(ShareKeysRequest request, CancellationToken cancellationToken)
        => Call((c, o) => c.ShareKeysAsync(request, o).ResponseAsync, _callTimeout, cancellationToken);

    /// <summary>Waits for the shares addressed to this site.</summary>
    public Task<ShareSet> AwaitSharesAsync(StageQuery query, TimeSpan wait, CancellationToken cancellationToken)
        => Call((c, o) => c.AwaitSharesAsync(query, o).ResponseAsync, wait, cancellationToken);

    /// <summary>Streams the masked input in chunks of at most 65,536 words; the whole stream is retried on transient failure.</summary>
    public Task<Ack> UploadMaskedInputAsync(Header header, uint[] words, string sha256, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(words);
        return Call((c, o) => StreamAsync(c, o, header, null, words, sha256), _callTimeout + TimeSpan.FromSeconds(words.Length / 1_000_000.0 * 10), cancellationToken);
    }

    /// <summary>
    /// Protocol version 4: streams slice <paramref name="slice"/> of the masked input (its words only, with their SHA-256)
    /// to <paramref name="endpoint"/>, the silo the round announcement names for it; retried there on transient failure
    /// (a slice has one host, so there is no failover).
    /// </summary>
    public Task<Ack> UploadMaskedInputSliceAsync(Uri endpoint, Header header, int slice, ReadOnlyMemory<uint> words, string sha256, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        Wire.V1.Aggregation.AggregationClient client = _sliceClients.GetOrAdd(SliceKey(endpoint),
            key => new Lazy<(GrpcChannel, Wire.V1.Aggregation.AggregationClient)>(() =>
            {
                GrpcChannel channel = Channel(new Uri(key));
                return (channel, new Wire.V1.Aggregation.AggregationClient(channel));
            })).Value.Client;
        TimeSpan timeout = _callTimeout + TimeSpan.FromSeconds(words.Length / 1_000_000.0 * 10);
        return _pipeline.ExecuteAsync(async ct =>
        {
            var options = new CallOptions(deadline: _time.GetUtcNow().UtcDateTime + timeout, cancellationToken: ct);
            return await StreamAsync(client, options, header, (uint)slice, words, sha256).ConfigureAwait(false);
        }, cancellationToken).AsTask();
    }

    /// <summary>The slice channels open now (one per authority uploaded to and not yet let go by <see cref="RetainSliceEndpoints"/>).</summary>
    internal int SliceChannelCount => _sliceClients.Count;

    /// <summary>
    /// Keeps the channels of <paramref name="endpoints"/> (the slice endpoints of the round about to upload) and disposes
    /// every other slice channel. A channel was kept per slice endpoint for the client's lifetime, so a cluster that
    /// announces other endpoints round after round (a long-lived one whose silos change, or a hostile one) grew them
    /// without bound; with this call before each round's uploads they are bounded by one round's endpoints. (Their
    /// connections belong to the shared handler, which closes them once idle.) Call it between uploads, not during them:
    /// an upload on a channel disposed here fails.
    /// </summary>
    public void RetainSliceEndpoints(IEnumerable<Uri> endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var keep = new HashSet<string>(endpoints.Select(SliceKey), StringComparer.OrdinalIgnoreCase);
        foreach (string key in _sliceClients.Keys)
        {
            if (!keep.Contains(key) && _sliceClients.TryRemove(key, out Lazy<(GrpcChannel Channel, Wire.V1.Aggregation.AggregationClient Client)>? slice) && slice.IsValueCreated)
            {
                slice.Value.Channel.Dispose();
            }
        }
    }

    private static string SliceKey(Uri endpoint) => endpoint.GetLeftPart(UriPartial.Authority);

    private static async Task<Ack> StreamAsync(Wire.V1.Aggregation.AggregationClient client, CallOptions options, Header header, uint? slice, ReadOnlyMemory<uint> words, string sha256)
    {
        using AsyncClientStreamingCall<MaskedInputChunk, Ack> call = client.UploadMaskedInput(options);
        const int chunk = 65_536;
        try
        {
            for (int offset = 0; offset < words.Length; offset += chunk)
            {
                var message = new MaskedInputChunk { Offset = (uint)offset };
                if (offset == 0)
                {
                    message.Header = header;
                    message.TotalWords = (uint)words.Length;
                    message.Sha256 = sha256;
                    if (slice is uint k)
                    {
                        message.Slice = k;
                    }
                }

                message.Words.AddRange(words.Span.Slice(offset, Math.Min(chunk, words.Length - offset)).ToArray());
                await call.RequestStream.WriteAsync(message, options.CancellationToken).ConfigureAwait(false);
            }

            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not (RpcException or OperationCanceledException))
        {
            // The transport failed under a write (e.g. the silo died and its connection ended): the call's status says
            // why if the server answered; otherwise the endpoint is gone, which callers handle as UNAVAILABLE.
            return await ResponseAsync(call, ex).ConfigureAwait(false);
        }

        return await ResponseAsync(call, null).ConfigureAwait(false);
    }

    /// <summary>The upload's answer; a transport failure that is not an <see cref="RpcException"/> becomes UNAVAILABLE.</summary>
    private static async Task<Ack> ResponseAsync(AsyncClientStreamingCall<MaskedInputChunk, Ack> call, Exception? writeFailure)
    {
        try
        {
            return await call.ResponseAsync.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not (RpcException or OperationCanceledException))
        {
            Exception cause = writeFailure ?? ex;
            throw new RpcException(new Status(StatusCode.Unavailable, $"the masked-input upload's connection failed: {cause.Message}", cause));
        }
    }

    /// <summary>Waits for the survivor set.</summary>
    public Task<SurvivorSet> AwaitSurvivorsAsync(StageQuery query, TimeSpan wait, CancellationToken cancellationToken)
        => Call((c, o) => c.AwaitSurvivorsAsync(query, o).ResponseAsync, wait, cancellationToken);

    /// <summary>Sends the consistency signature.</summary>
    public Task<Ack> SignSurvivorsAsync(ConsistencyRequest request, CancellationToken cancellationToken)
        => Call((c, o) => c.SignSurvivorsAsync(request, o).ResponseAsync, _callTimeout, cancellationToken);

    /// <summary>Waits for the unmasking request.</summary>
    public Task<UnmaskRequestMessage> AwaitUnmaskRequestAsync(StageQuery query, TimeSpan wait, CancellationToken cancellationToken)
        => Call((c, o) => c.AwaitUnmaskRequestAsync(query, o).ResponseAsync, wait, cancellationToken);

    /// <summary>Sends the revealed shares.</summary>
    public Task<Ack> UnmaskAsync(UnmaskResponseMessage request, CancellationToken cancellationToken)
        => Call((c, o) => c.UnmaskAsync(request, o).ResponseAsync, _callTimeout, cancellationToken);

    /// <summary>Waits for the round's outcome.</summary>
    public Task<RoundOutcome> AwaitOutcomeAsync(StageQuery query, TimeSpan wait, CancellationToken cancellationToken)
        => Call((c, o) => c.AwaitRoundOutcomeAsync(query, o).ResponseAsync, wait, cancellationToken);

    /// <summary>Downloads a model version and checks its length and SHA-256.</summary>
    public Task<(long Version, float[] Values, string Sha256)> DownloadModelAsync(ModelRequest request, int expectedLength, CancellationToken cancellationToken)
        => Call(async (c, o) =>
        {
            using AsyncServerStreamingCall<ModelChunk> call = c.DownloadModel(request, o);
            float[]? values = null;
            string sha = "";
            long version = 0;
            int received = 0;
            while (await call.ResponseStream.MoveNext(o.CancellationToken).ConfigureAwait(false))
            {
                ModelChunk chunk = call.ResponseStream.Current;
                if (values is null)
                {
                    if (chunk.TotalValues != (uint)expectedLength)
                    {
                        throw new InvalidDataException($"the aggregator sent a model of {chunk.TotalValues} parameters; this site's model has {expectedLength}");
                    }

                    values = new float[expectedLength];
                    sha = chunk.Sha256;
                    version = (long)chunk.Version;
                }

                if (chunk.Offset != (uint)received || received + chunk.Values.Count > values.Length)
                {
                    throw new InvalidDataException("the aggregator sent model chunks out of order or too many values");
                }

                chunk.Values.CopyTo(values, received);
                received += chunk.Values.Count;
            }

            if (values is null || received != values.Length)
            {
                throw new InvalidDataException($"the model download ended after {received} of {expectedLength} values");
            }

            return (version, values, sha);
        }, _callTimeout * 4, cancellationToken);

    private async Task<T> Call<T>(Func<Wire.V1.Aggregation.AggregationClient, CallOptions, Task<T>> call, TimeSpan timeout, CancellationToken cancellationToken)
    {
        return await _pipeline.ExecuteAsync(async ct =>
        {
            // The endpoint that last answered first, then the others in order; UNAVAILABLE (unreachable, or a front
            // without its coordinator) and UNIMPLEMENTED move on, any other answer is the aggregator's.
            int start = _current;
            for (int i = 0; ; i++)
            {
                int k = (start + i) % _clients.Length;
                var options = new CallOptions(deadline: _time.GetUtcNow().UtcDateTime + timeout, cancellationToken: ct);
                try
                {
                    T result = await call(_clients[k], options).ConfigureAwait(false);
                    _current = k;
                    return result;
                }
                catch (RpcException ex) when (i + 1 < _clients.Length && ShouldTryNextEndpoint(ex))
                {
                    // next endpoint
                }
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (GrpcChannel channel in _channels)
        {
            channel.Dispose();
        }

        foreach (Lazy<(GrpcChannel Channel, Wire.V1.Aggregation.AggregationClient Client)> slice in _sliceClients.Values.Where(l => l.IsValueCreated))
        {
            slice.Value.Channel.Dispose();
        }

        if (_ownsHandler)
        {
            _handler.Dispose();
        }
    }
}
