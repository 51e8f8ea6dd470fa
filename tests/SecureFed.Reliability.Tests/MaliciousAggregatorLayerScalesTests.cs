using System.Collections.Concurrent;
using SecureFed.Agent;
using SecureFed.Audit;
using SecureFed.Privacy;
using SecureFed.Protocol;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Layer scales (docs/PROTOCOL.md, "Layer scales") from the agent's side, against the fake aggregator of
/// <see cref="MaliciousAggregatorTests"/> (real agent, real gRPC on 127.0.0.1): one factor per tensor of the site's
/// model reaches its local training and its audit log; a wrong count, a factor out of range or a trainer that cannot
/// apply them is declined with the reason before any key leaves; scales the other sites were not shown (not in the
/// digest they sign) make the round fail before the masked input.
/// </summary>
public sealed partial class MaliciousAggregatorTests
{
    /// <summary>The scales the fake aggregator announces (the fake trainer's model has three tensors).</summary>
    internal static readonly float[] AnnouncedLayerScales = [0.5f, 2f, 1.25f];

    private static readonly long[] FakeTensorSizes = [1_000, 600, 400];

    public static TheoryData<AggregatorMisbehaviour, bool, string> LayerScaleDeclines => new()
    {
        { AggregatorMisbehaviour.LayerScalesWrongCount, true, "the round announces 2 DP-SGD layer scales, but this site's model has 3 parameter tensors" },
        { AggregatorMisbehaviour.LayerScalesOutOfRange, true, "DP-SGD layer scale 2 is 1E+09, outside [1E-06, 1000000]" },
        { AggregatorMisbehaviour.LayerScales, false, "the round announces 3 DP-SGD layer scales, but this site's trainer cannot apply layer scales" },
    };

    [Fact]
    public async Task Agent_LayerScalesOnePerTensor_TrainsWithThemAndAuditsTheirDigest()
    {
        var trainer = new FakeTrainer("site-a", 2_000, 500) { TensorSizes = FakeTensorSizes };
        (ConcurrentQueue<AgentRoundReport> reports, _, _, _, _, _, _, string data) = await RunAsync(AggregatorMisbehaviour.LayerScales, maxRetries: 1, trainer: trainer);

        AgentRoundReport round2 = Assert.Single(reports, r => r.Round == 2);
        Assert.True(round2.Completed, round2.Outcome);
        Assert.Empty(Assert.Single(trainer.Plans, p => p.Round == 1).LayerScales);
        Assert.Equal(AnnouncedLayerScales, Assert.Single(trainer.Plans, p => p.Round == 2).LayerScales);
        string[] audit = File.ReadAllLines(Path.Combine(AgentState.AuditDirectory(data), AuditLog.LogFileName));
        string joined = Assert.Single(audit, l => l.Contains($"\"{AuditEvents.RoundJoined}\"", StringComparison.Ordinal) && RoundTwo().IsMatch(l));
        Assert.Contains("\"dp_sgd_layer_scales\":3", joined, StringComparison.Ordinal);
        Assert.Contains($"\"dp_sgd_layer_scales_sha256\":\"{RoundParameters.LayerScalesSha256(AnnouncedLayerScales)}\"", joined, StringComparison.Ordinal);
        Assert.True(AuditVerifier.Verify(AgentState.AuditDirectory(data)).Ok);
    }

    [Theory]
    [MemberData(nameof(LayerScaleDeclines))]
    public async Task Agent_LayerScalesThatDoNotFit_DeclinesWithReasonAuditedSendsNoKeys(AggregatorMisbehaviour misbehaviour, bool trainerHasTensors, string reason)
    {
        var trainer = new FakeTrainer("site-a", 2_000, 500) { TensorSizes = trainerHasTensors ? FakeTensorSizes : null };
        (ConcurrentQueue<AgentRoundReport> reports, _, MaliciousAggregatorService fake, _, _, _, _, string data) = await RunAsync(misbehaviour, maxRetries: 1, trainer: trainer);

        AssertRoundTwoDeclinedBeforeAnyKey(reports, fake, trainer, data, reason);
    }

    [Fact]
    public async Task Agent_LayerScalesShownOnlyToThisSite_RoundFailsBeforeMaskedInputNothingRecorded()
    {
        var trainer = new FakeTrainer("site-a", 2_000, 500) { TensorSizes = FakeTensorSizes };
        (ConcurrentQueue<AgentRoundReport> reports, _, MaliciousAggregatorService fake, _, _, _, _, string data) = await RunAsync(AggregatorMisbehaviour.LayerScalesHiddenFromPeers, maxRetries: 1, trainer: trainer);

        AgentRoundReport round2 = Assert.Single(reports, r => r.Round == 2);
        Assert.False(round2.Completed);
        Assert.StartsWith("refused: ", round2.Outcome, StringComparison.Ordinal);
        Assert.DoesNotContain(fake.Received, c => c.Round == 2 && c.Call == "UploadMaskedInput");
        Assert.DoesNotContain(PrivacyLedger.OpenReadOnly(Path.Combine(data, "privacy-ledger.jsonl")).Entries, e => e.Round == 2);
    }
}
