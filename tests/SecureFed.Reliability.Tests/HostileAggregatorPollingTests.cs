using Grpc.Core;
using SecureFed.Agent;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// How the agent waits for a round against a hostile aggregator (review of session 58): statuses it did not expect from
/// AwaitRound, and answers that came at once. The real agent against the fake aggregator of
/// <see cref="MaliciousAggregatorTests"/>; each test fails without its fix.
/// </summary>
public sealed partial class MaliciousAggregatorTests
{
    public static TheoryData<StatusCode> WaitedOutStatuses => new() { StatusCode.ResourceExhausted, StatusCode.Cancelled };

    /// <summary>
    /// RESOURCE_EXHAUSTED (an overloaded aggregator) and CANCELLED from the aggregator's side while the agent is not
    /// stopping escaped RunAsync and stopped the agent host with a stack trace. Now they are waited out like UNAVAILABLE.
    /// </summary>
    [Theory]
    [MemberData(nameof(WaitedOutStatuses))]
    public async Task AwaitRound_AnsweredAWaitedOutStatusSeveralTimes_TheAgentWaitsAndGoesOn(StatusCode code)
    {
        int calls = 0;
        ReviewRun run = await RunReviewAsync(null,
            awaitRoundStatus: () => Interlocked.Increment(ref calls) <= 3 ? new Status(code, "the aggregator is busy") : null,
            configureRunner: r => { r.FirstUnreachableWait = TimeSpan.FromMilliseconds(20); r.MaxUnreachableWait = TimeSpan.FromMilliseconds(100); });

        Assert.Null(run.Failure);
        Assert.Contains(run.Reports, r => r.Round == 1 && r.Completed);
        Assert.Contains(run.Reports, r => r.Round == 2 && r.Completed);
    }

    /// <summary>
    /// Any other status (here NOT_FOUND) stopped the agent host with an RpcException's stack trace. Now the agent stops with
    /// one line (the worker logs it without a trace) naming the aggregator's status and detail.
    /// </summary>
    [Fact]
    public async Task AwaitRound_AnsweredNotFound_StopsWithOneLineNamingTheStatusAndDetail()
    {
        ReviewRun run = await RunReviewAsync(null, awaitRoundStatus: () => new Status(StatusCode.NotFound, "no federation here"));

        AggregatorUnexpectedStatusException failure = Assert.IsType<AggregatorUnexpectedStatusException>(run.Failure);
        Assert.Equal(StatusCode.NotFound, failure.StatusCode);
        Assert.Contains("answered AwaitRound with status NotFound (detail: no federation here)", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', failure.Message);
    }

    /// <summary>
    /// An aggregator that answers AwaitRound with DEADLINE_EXCEEDED at once, long before the call's 5-minute deadline, was
    /// called again without any wait. Now the agent pauses <see cref="AgentRunner.AbortedPollPause"/> between such calls.
    /// </summary>
    [Fact]
    public async Task AwaitRound_AnsweredDeadlineExceededAtOnce_AgentPausesBetweenCalls()
    {
        DateTime until = DateTime.MaxValue;
        ReviewRun run = await RunReviewAsync(null, started: _ => until = DateTime.UtcNow.AddSeconds(3),
            awaitRoundStatus: () => DateTime.UtcNow < until ? new Status(StatusCode.DeadlineExceeded, "no round yet") : null);

        Assert.Null(run.Failure);
        int calls = run.Fake.Received.Count(c => c.Round == 1 && c.Call == "AwaitRound");
        Assert.InRange(calls, 1, 25); // 3 s / 0.2 s = 15, and a little slack for the call itself
    }

    /// <summary>
    /// An aggregator that answers every poll at once with an announcement this site declines (here another federation's)
    /// made the agent spin: a poll, a decline and a signed audit line each time, thousands a minute. Now the agent pauses
    /// <see cref="AgentRunner.AbortedPollPause"/> after every decline.
    /// </summary>
    [Fact]
    public async Task AwaitRound_AnsweredAtOnceWithDeclinedRounds_AgentPausesAfterEachDecline()
    {
        DateTime until = DateTime.MaxValue;
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            if (round >= 2)
            {
                if (until == DateTime.MaxValue)
                {
                    until = DateTime.UtcNow.AddSeconds(3);
                }

                a.Header.FederationId = "another-federation";
            }
        }, rounds: 1_000_000, finishedWhen: () => DateTime.UtcNow >= until);

        Assert.Null(run.Failure);
        int declines = run.Fake.Received.Count(c => c.Call == "DeclineRound");
        Assert.InRange(declines, 1, 25); // 3 s / 0.2 s = 15, and a little slack for the calls themselves
    }
}
