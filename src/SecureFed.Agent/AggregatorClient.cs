using System.Net.Security;
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
    private readonly GrpcChannel _channel;
    private readonly Wire.V1.Aggregation.AggregationClient _client;
    private readonly ResiliencePipeline _pipeline;
    private readonly TimeSpan _callTimeout;
    private readonly TimeProvider _time;

    /// <summary>Connects (lazily) to <paramref name="address"/>; retries are counted on <paramref name="telemetry"/> when given.</summary>
    public AggregatorClient(Uri address, PartyKit kit, TimeSpan callTimeout, int maxRetries, TimeProvider? time = null, HttpMessageHandler? handler = null, AgentTelemetry? telemetry = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(kit);
        _time = time ?? TimeProvider.System;
        _callTimeout = callTimeout;
        handler ??= new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = [kit.TlsCertificate],
                RemoteCertificateValidationCallback = PeerTrust.AggregatorValidationCallback(kit.Manifest),
            },
            EnableMultipleHttp2Connections = true,
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = 8 * 1024 * 1024,
            MaxSendMessageSize = 8 * 1024 * 1024,
        });
        _client = new Wire.V1.Aggregation.AggregationClient(_channel);
        _pipeline = BuildPipeline(maxRetries, _time, telemetry);
    }

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
        => Call(async (c, o) =>
        {
            using AsyncClientStreamingCall<MaskedInputChunk, Ack> call = c.UploadMaskedInput(o);
            const int chunk = 65_536;
            for (int offset = 0; offset < words.Length; offset += chunk)
            {
                var message = new MaskedInputChunk { Offset = (uint)offset };
                if (offset == 0)
                {
                    message.Header = header;
                    message.TotalWords = (uint)words.Length;
                    message.Sha256 = sha256;
                }

                message.Words.AddRange(words.AsSpan(offset, Math.Min(chunk, words.Length - offset)).ToArray());
                await call.RequestStream.WriteAsync(message, o.CancellationToken).ConfigureAwait(false);
            }

            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
            return await call.ResponseAsync.ConfigureAwait(false);
        }, _callTimeout + TimeSpan.FromSeconds(words.Length / 1_000_000.0 * 10), cancellationToken);

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
            var options = new CallOptions(deadline: _time.GetUtcNow().UtcDateTime + timeout, cancellationToken: ct);
            return await call(_client, options).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void Dispose() => _channel.Dispose();
}
