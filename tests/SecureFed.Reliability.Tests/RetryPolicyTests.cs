using Grpc.Core;
using Polly;
using SecureFed.Agent;

namespace SecureFed.Reliability.Tests;

/// <summary>Which gRPC failures the agent's resilience pipeline retries (no network: the call is a local function).</summary>
public sealed class RetryPolicyTests
{
    [Theory]
    [InlineData(StatusCode.Unavailable, 4)]
    [InlineData(StatusCode.Internal, 4)]
    [InlineData(StatusCode.ResourceExhausted, 4)]
    [InlineData(StatusCode.Cancelled, 4)]
    [InlineData(StatusCode.Unknown, 1)]
    [InlineData(StatusCode.InvalidArgument, 1)]
    [InlineData(StatusCode.FailedPrecondition, 1)]
    [InlineData(StatusCode.PermissionDenied, 1)]
    [InlineData(StatusCode.DeadlineExceeded, 1)]
    public async Task Pipeline_StatusFromTheAggregator_RetriedOnlyWhenTransient(StatusCode status, int expectedAttempts)
    {
        ResiliencePipeline pipeline = AggregatorClient.BuildPipeline(maxRetries: 3, new ZeroDelayTime());
        int attempts = 0;

        var ex = await Assert.ThrowsAsync<RpcException>(async () => await pipeline.ExecuteAsync(async _ =>
        {
            attempts++;
            await Task.Yield();
            throw new RpcException(new Status(status, "refused"));
        }, CancellationToken.None));

        Assert.Equal(status, ex.StatusCode);
        Assert.Equal(expectedAttempts, attempts);
    }

    [Fact]
    public async Task Pipeline_CancelledWhileTheAgentItselfCancels_NotRetried()
    {
        ResiliencePipeline pipeline = AggregatorClient.BuildPipeline(maxRetries: 3, new ZeroDelayTime());
        using var cts = new CancellationTokenSource();
        int attempts = 0;

        await Assert.ThrowsAnyAsync<Exception>(async () => await pipeline.ExecuteAsync(async _ =>
        {
            attempts++;
            await cts.CancelAsync();
            throw new RpcException(new Status(StatusCode.Cancelled, "agent shutting down"));
        }, cts.Token));

        Assert.Equal(1, attempts);
    }

    [Fact]
    public async Task Pipeline_TransientThenSuccess_CountsEachRetryOnTheAgentMeter()
    {
        using var telemetry = new AgentTelemetry(meterFactory: null);
        var retries = new List<(long Value, string? Status)>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, telemetry.Meter) && instrument.Name == "securefed.agent.retries")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) => retries.Add((value, tags.ToArray().FirstOrDefault(t => t.Key == "status").Value?.ToString())));
        listener.Start();
        ResiliencePipeline pipeline = AggregatorClient.BuildPipeline(maxRetries: 3, new ZeroDelayTime(), telemetry);
        int attempts = 0;

        int result = await pipeline.ExecuteAsync(async _ =>
        {
            await Task.Yield();
            return ++attempts < 3 ? throw new RpcException(new Status(StatusCode.Unavailable, "restarting")) : attempts;
        }, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(3, result);
        Assert.Equal([(1L, "Unavailable"), (1L, "Unavailable")], retries);
    }

    /// <summary>Makes Polly's back-off delays instant so the test does not wait.</summary>
    private sealed class ZeroDelayTime : TimeProvider
    {
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
            => base.CreateTimer(callback, state, dueTime == Timeout.InfiniteTimeSpan ? dueTime : TimeSpan.Zero, period);
    }
}
