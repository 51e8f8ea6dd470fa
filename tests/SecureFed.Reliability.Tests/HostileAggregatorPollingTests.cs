using Grpc.Core;
using SecureFed.Agent;
using SecureFed.Privacy;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// How the agent waits for a round against a hostile aggregator (review of session 58): statuses it did not expect from
/// AwaitRound, answers that came at once, and a round number far ahead. The real agent against the fake aggregator of
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

    /// <summary>
    /// A round number far beyond the privacy ledger's last (2^63 - 1): the agent took part, the ledger recorded it, and
    /// every later honest round was declined for going back before it, forever. Now it is declined, charging nothing, and
    /// the agent asks again after its own last round, taking part in the honest round that follows.
    /// </summary>
    [Fact]
    public async Task Announce_RoundFarBeyondTheLedgersLast_DeclinedChargingNothingAndTheNextRoundIsTaken()
    {
        int tampered = 0;
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            if (round == 2 && Interlocked.Increment(ref tampered) == 1)
            {
                a.Header.Round = long.MaxValue; // only the first announcement of round 2: the one after it is honest
            }
        });

        Assert.Null(run.Failure);
        AgentRoundReport declined = Assert.Single(run.Reports, r => r.Round == long.MaxValue);
        Assert.Equal("declined: the aggregator announced round 9223372036854775807, more than 1,000,000 rounds after round 1 of this site's privacy ledger; a round once recorded there cannot be gone back before, so this site does not take part", declined.Outcome);
        Assert.Contains(run.Fake.Received, c => c.Round == long.MaxValue && c.Call == "DeclineRound");
        Assert.All(PrivacyLedger.OpenReadOnly(Path.Combine(run.Data, "privacy-ledger.jsonl")).Entries, e => Assert.InRange(e.Round, 1, 2));
        Assert.Contains(run.Reports, r => r.Round == 2 && r.Completed);
    }

    /// <summary>
    /// PrivacyLedger.Check names the next round as the last one + 1: after an entry at round 2^63 - 1 (which the ledger
    /// accepts, and an agent before the bound above could record) the reason named round -9223372036854775808.
    /// </summary>
    [Fact]
    public void LedgerCheck_AfterRoundLongMaxValue_TheReasonNamesNoNegativeRound()
    {
        string path = Path.Combine(_dir, "ledger-max", "privacy-ledger.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        PrivacyLedger ledger = PrivacyLedger.Open(path, "site-a");
        ledger.Append(long.MaxValue, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.05, 1.0, 20), 1e-5);

        LedgerDecision decision = ledger.Check(Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.05, 1.0, 20), 1000, 1e-5);

        Assert.EndsWith("after round 9223372036854775807", decision.Reason, StringComparison.Ordinal);
    }
}
