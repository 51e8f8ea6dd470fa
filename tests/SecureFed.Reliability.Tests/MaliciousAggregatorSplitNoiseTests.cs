using System.Collections.Concurrent;
using SecureFed.Agent;
using SecureFed.Audit;
using SecureFed.Privacy;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Split patient-level noise (docs/PROTOCOL.md, "Split patient-level noise") from the agent's side, against the fake
/// aggregator of <see cref="MaliciousAggregatorTests"/> (real agent, real gRPC on 127.0.0.1): a site that has not opted
/// in, a round without the one-step cap, or more shares than t is declined with the reason before any key leaves; an
/// opted-in site trains one step at σ/√k and records both ε; and a split the other sites were not shown (not in the
/// digest they sign) makes the round fail before the masked input.
/// </summary>
public sealed partial class MaliciousAggregatorTests
{
    public static TheoryData<AggregatorMisbehaviour, bool, string> Declines => new()
    {
        { AggregatorMisbehaviour.SplitNoise, false, "the round splits the patient-level DP-SGD noise into 2 shares (each site adds σ/√2); this site has not opted in (SecureFed:AcceptSplitPatientNoise is false)" },
        { AggregatorMisbehaviour.SplitNoiseManySteps, true, "split patient-level noise (2 shares) needs exactly 1 DP-SGD step per round, but the round announces max_steps = 0" },
        { AggregatorMisbehaviour.SplitNoiseAboveThreshold, true, "the patient-level noise is split into 4 shares, more than the threshold t = 3: a sum of t sites would carry less than the announced noise multiplier" },
    };

    [Theory]
    [MemberData(nameof(Declines))]
    public async Task Agent_SplitNoiseItMayNotAccept_DeclinesWithReasonAuditedSendsNoKeys(AggregatorMisbehaviour misbehaviour, bool optedIn, string reason)
    {
        var trainer = new FakeTrainer("site-a", 2_000, 500);
        (ConcurrentQueue<AgentRoundReport> reports, MaliciousAggregatorService fake, string data) = await RunSplitAsync(misbehaviour, optedIn, trainer);

        AssertRoundTwoDeclinedBeforeAnyKey(reports, fake, trainer, data, reason);
    }

    [Fact]
    public async Task Agent_SplitNoiseWithAdamLocalOptimiser_DeclinesNamingTheOptimiser()
    {
        var trainer = new FakeTrainer("site-a", 2_000, 500);
        (ConcurrentQueue<AgentRoundReport> reports, MaliciousAggregatorService fake, _) = await RunSplitAsync(AggregatorMisbehaviour.SplitNoise, optedIn: true, trainer, optimizer: "adam");

        AgentRoundReport declined = Assert.Single(reports, r => r.Round == 2);
        Assert.Equal("declined: split patient-level noise (2 shares) needs the plain SGD local optimiser (SecureFed:Optimizer = sgd, this site uses adam): only then is the sum of the sites' steps one DP-SGD step", declined.Outcome);
        Assert.DoesNotContain(fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
    }

    [Fact]
    public async Task Agent_OptedInSplitNoiseRound_TrainsOneStepAtSigmaOverSqrtKAndRecordsBothEpsilons()
    {
        var trainer = new FakeTrainer("site-a", 2_000, 500);
        (ConcurrentQueue<AgentRoundReport> reports, _, string data) = await RunSplitAsync(AggregatorMisbehaviour.SplitNoise, optedIn: true, trainer);

        AgentRoundReport round2 = Assert.Single(reports, r => r.Round == 2);
        Assert.True(round2.Completed, round2.Outcome);
        LocalTrainingPlan plan = Assert.Single(trainer.Plans, p => p.Round == 2);
        Assert.Equal(1, plan.MaxSteps);
        Assert.Equal(2, plan.NoiseShares);
        Assert.Equal(1.0 / Math.Sqrt(2), plan.SiteNoiseMultiplier, 12);
        Assert.Equal(1.0, plan.NoiseMultiplier);
        Assert.Equal(1, trainer.ExpectedSteps(plan));

        // Round 1 (not split) counts the same for both; round 2 adds 1 step at σ for the sum and σ/√2 for collusion.
        PrivacyLedger ledger = PrivacyLedger.OpenReadOnly(Path.Combine(data, "privacy-ledger.jsonl"));
        Assert.Equal([Guarantee.Record, Guarantee.Site], ledger.Entries.Where(e => e.Round == 1).Select(e => e.Guarantee));
        Assert.Equal([Guarantee.RecordCollusion, Guarantee.Record, Guarantee.Site], ledger.Entries.Where(e => e.Round == 2).Select(e => e.Guarantee));
        var collusionEntry = (SubsampledGaussianMechanism)ledger.Entries.Single(e => e.Guarantee == Guarantee.RecordCollusion).Mechanism;
        Assert.Equal(1.0 / Math.Sqrt(2), collusionEntry.NoiseMultiplier, 12);
        Assert.Equal(1, collusionEntry.Steps);
        double record = ledger.Spent(Guarantee.Record, 1e-5).Epsilon;
        double collusion = ledger.Spent(Guarantee.RecordCollusion, 1e-5).Epsilon;
        Assert.True(collusion > record, $"collusion ε {collusion} should exceed the sum's ε {record}");
        Assert.Equal(record, round2.RecordEpsilon, 9);
        Assert.Equal(collusion, round2.CollusionEpsilon, 9);

        string[] audit = File.ReadAllLines(Path.Combine(AgentState.AuditDirectory(data), AuditLog.LogFileName));
        string ledgerEvent = Assert.Single(audit, l => l.Contains($"\"{AuditEvents.PrivacyLedger}\"", StringComparison.Ordinal) && RoundTwo().IsMatch(l) && l.Contains("\"record\"", StringComparison.Ordinal));
        Assert.Contains("\"noise_shares\":2", ledgerEvent, StringComparison.Ordinal);
        Assert.Contains("\"collusion_epsilon\":", ledgerEvent, StringComparison.Ordinal);
        Assert.True(AuditVerifier.Verify(AgentState.AuditDirectory(data)).Ok);
    }

    [Fact]
    public async Task Agent_SplitNoiseShownOnlyToThisSite_RoundFailsBeforeMaskedInputNothingRecorded()
    {
        var trainer = new FakeTrainer("site-a", 2_000, 500);
        (ConcurrentQueue<AgentRoundReport> reports, MaliciousAggregatorService fake, string data) = await RunSplitAsync(AggregatorMisbehaviour.SplitNoiseHiddenFromPeers, optedIn: true, trainer);

        AgentRoundReport round2 = Assert.Single(reports, r => r.Round == 2);
        Assert.False(round2.Completed);
        Assert.StartsWith("refused: ", round2.Outcome, StringComparison.Ordinal);
        Assert.DoesNotContain(fake.Received, c => c.Round == 2 && c.Call == "UploadMaskedInput");
        Assert.DoesNotContain(PrivacyLedger.OpenReadOnly(Path.Combine(data, "privacy-ledger.jsonl")).Entries, e => e.Round == 2);
    }

    /// <summary>Round 1 completed; round 2 declined with <paramref name="reason"/> before any key left: audited, nothing trained or recorded.</summary>
    private static void AssertRoundTwoDeclinedBeforeAnyKey(ConcurrentQueue<AgentRoundReport> reports, MaliciousAggregatorService fake, FakeTrainer trainer, string data, string reason)
    {
        Assert.Contains(reports, r => r.Round == 1 && r.Completed);
        AgentRoundReport declined = Assert.Single(reports, r => r.Round == 2);
        Assert.Equal("declined: " + reason, declined.Outcome);
        Assert.Contains(fake.Received, c => c.Round == 2 && c.Call == "DeclineRound");
        Assert.DoesNotContain(fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
        Assert.DoesNotContain(trainer.Plans, p => p.Round == 2);
        string[] audit = File.ReadAllLines(Path.Combine(AgentState.AuditDirectory(data), AuditLog.LogFileName));
        Assert.Contains(audit, l => l.Contains($"\"{AuditEvents.Refusal}\"", StringComparison.Ordinal) && RoundTwo().IsMatch(l) && l.Contains(reason, StringComparison.Ordinal));
        Assert.DoesNotContain(PrivacyLedger.OpenReadOnly(Path.Combine(data, "privacy-ledger.jsonl")).Entries, e => e.Round == 2);
    }

    private async Task<(ConcurrentQueue<AgentRoundReport> Reports, MaliciousAggregatorService Fake, string Data)> RunSplitAsync(AggregatorMisbehaviour misbehaviour, bool optedIn, FakeTrainer trainer, string optimizer = "sgd")
    {
        (ConcurrentQueue<AgentRoundReport> reports, _, MaliciousAggregatorService fake, _, _, _, _, string data) = await RunAsync(misbehaviour, maxRetries: 1, configure: o =>
        {
            o.AcceptSplitPatientNoise = optedIn;
            o.MaxCollusionEpsilon = optedIn ? 1000 : 0;
            o.Optimizer = optimizer;
        }, trainer: trainer);
        return (reports, fake, data);
    }
}
