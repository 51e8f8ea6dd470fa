using SecureFed.Cluster.Front;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>The coordinator silo turns the round grain's refusals back into the single process's exceptions.</summary>
public sealed class ClusterRoundServerTests
{
    [Fact]
    public void Violation_GrainMessageWithParty_SameStagePartyAndReasonAsServerRound()
    {
        var original = new ProtocolViolationException(ProtocolStage.ShareKeys, "message for stage ShareKeys is out of order: the round is at stage MaskedInputCollection", 3);

        ProtocolViolationException rebuilt = ClusterRoundServer.Violation(ProtocolStage.AdvertiseKeys, original.Message);

        Assert.Equal(original.Stage, rebuilt.Stage);
        Assert.Equal(original.Party, rebuilt.Party);
        Assert.Equal(original.Reason, rebuilt.Reason);
        Assert.Equal(original.Message, rebuilt.Message);
    }

    [Fact]
    public void Violation_GrainOwnMessage_KeptWhole()
    {
        ProtocolViolationException rebuilt = ClusterRoundServer.Violation(ProtocolStage.MaskedInputCollection, "index 2: slice 7 does not exist; the round has 3");

        Assert.Equal(ProtocolStage.MaskedInputCollection, rebuilt.Stage);
        Assert.Null(rebuilt.Party);
        Assert.Equal("index 2: slice 7 does not exist; the round has 3", rebuilt.Reason);
    }

    [Fact]
    public void Aborted_GrainMessageNamingADealerAtFault_SamePartyAndReasonAsServerRound()
    {
        var original = new RoundAbortedException(ProtocolStage.Unmasking, "the self-mask seed of 'site-x' cannot be rebuilt: ... so 'site-x' dealt shares of another secret", 4);

        RoundAbortedException rebuilt = ClusterRoundServer.Aborted(ProtocolStage.Unmasking, original.Message);

        Assert.Equal(4, rebuilt.AtFault);
        Assert.Equal(original.Reason, rebuilt.Reason);
        Assert.Equal(original.Message, rebuilt.Message);
    }

    [Fact]
    public void Aborted_GrainMessageNamingSuspects_SameSuspectsAndReasonAsServerRound()
    {
        var original = new RoundAbortedException(ProtocolStage.Unmasking, "the self-mask seed of 'site-x' cannot be rebuilt from the 4 shares revealed by ...", null, [4, 1, 3, 4]);

        RoundAbortedException rebuilt = ClusterRoundServer.Aborted(ProtocolStage.Unmasking, original.Message);

        Assert.Equal([1, 3, 4], original.Suspects);
        Assert.Null(rebuilt.AtFault);
        Assert.Equal([1, 3, 4], rebuilt.Suspects);
        Assert.Equal(original.Reason, rebuilt.Reason);
        Assert.Equal(original.Message, rebuilt.Message);
    }

    [Fact]
    public void Aborted_GrainMessageWithoutParty_ReasonOnlyNobodyAtFault()
    {
        var original = new RoundAbortedException(ProtocolStage.Unmasking, "only 2 shares of the self-mask seed of 'site-a' were revealed; t = 3");

        RoundAbortedException rebuilt = ClusterRoundServer.Aborted(ProtocolStage.Unmasking, original.Message);

        Assert.Null(rebuilt.AtFault);
        Assert.Empty(rebuilt.Suspects);
        Assert.Equal(original.Reason, rebuilt.Reason);
        Assert.Null(ClusterRoundServer.Aborted(ProtocolStage.Unmasking, "a slice could not be unmasked").AtFault);
    }
}
