using SecureFed.Aggregator;
using SecureFed.Cluster.Front;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>The round grain's decision on a slice upload (protocol version 4), without Orleans.</summary>
public sealed class SliceAdmissionTests
{
    private static readonly ClusterRoundSpec Spec = new("fed", 7, "s7",
        [new Participant(1, "a", new byte[32]), new Participant(2, "b", new byte[32]), new Participant(3, "c", new byte[32])], 2, 2, 2500, 32, 1024);

    [Fact]
    public void Decide_SiteInU2AtMaskedInput_AdmittedWithTheSliceWords()
    {
        SliceAdmission last = SliceAdmission.Decide(Spec, ProtocolStage.MaskedInputCollection, [1, 2, 3], [], 7, "s7", "b", 2);

        Assert.True(last.Admitted);
        Assert.Equal(2, last.Index);
        Assert.Equal(2048, last.Offset);
        Assert.Equal(452, last.Length); // the last slice is shorter
    }

    [Theory]
    [InlineData(7, "s7", "b", 0, SliceRefusalKind.None, null)]
    [InlineData(8, "s7", "b", 0, SliceRefusalKind.StaleOrReplay, "the message is for round 8 session 's7', but the current round is 7 (session s7)")]
    [InlineData(7, "old", "b", 0, SliceRefusalKind.StaleOrReplay, "replays and stale messages are refused")]
    [InlineData(7, "s7", "z", 0, SliceRefusalKind.NotInCohort, "site 'z' is not in the cohort of round 7")]
    [InlineData(7, "s7", "c", 0, SliceRefusalKind.NotExpected, "index 3: did not complete ShareKeys in this round")]
    [InlineData(7, "s7", "b", 3, SliceRefusalKind.NoSuchSlice, "index 2: slice 3 does not exist; the round has 3 slices")]
    [InlineData(7, "s7", "b", -1, SliceRefusalKind.NoSuchSlice, "slice -1 does not exist")]
    [InlineData(7, "s7", "a", 0, SliceRefusalKind.AlreadySent, "index 1: already sent its masked input (every slice)")]
    public void Decide_EachWrongUpload_RefusedWithItsKindAndReason(long round, string session, string site, long slice, SliceRefusalKind kind, string? reason)
    {
        SliceAdmission admission = SliceAdmission.Decide(Spec, ProtocolStage.MaskedInputCollection, [1, 2], [1], round, session, site, slice);

        Assert.Equal(kind, admission.Refusal);
        if (reason is not null)
        {
            Assert.Contains(reason, admission.Reason, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Decide_WrongStageOrNoRound_Refused()
    {
        SliceAdmission early = SliceAdmission.Decide(Spec, ProtocolStage.ShareKeys, [1, 2, 3], [], 7, "s7", "a", 0);
        SliceAdmission lost = SliceAdmission.Decide(null, ProtocolStage.Aborted, [], [], 7, "s7", "a", 0);

        Assert.Equal(SliceRefusalKind.WrongStage, early.Refusal);
        Assert.Contains("the round is at stage ShareKeys", early.Reason, StringComparison.Ordinal);
        Assert.Equal(SliceRefusalKind.StaleOrReplay, lost.Refusal);
        Assert.Contains("round 7 is not open on this cluster", lost.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_RoundThatTakesWholeInputs_RefusesEverySliceOfACohortSite()
    {
        SliceAdmission whole = SliceAdmission.Decide(Spec, ProtocolStage.MaskedInputCollection, [1, 2, 3], [], 7, "s7", "b", 0, wholeInputsOnly: true);
        SliceAdmission stranger = SliceAdmission.Decide(Spec, ProtocolStage.MaskedInputCollection, [1, 2, 3], [], 7, "s7", "z", 0, wholeInputsOnly: true);

        Assert.Equal(SliceRefusalKind.WholeInputsOnly, whole.Refusal);
        Assert.Contains("index 2: round 7 takes the masked input whole (protocol version 3); it announced no slices", whole.Reason, StringComparison.Ordinal);
        Assert.Equal(SliceRefusalKind.NotInCohort, stranger.Refusal);
    }

    [Theory]
    [InlineData(SliceRefusalKind.StaleOrReplay, Grpc.Core.StatusCode.FailedPrecondition)]
    [InlineData(SliceRefusalKind.WrongStage, Grpc.Core.StatusCode.FailedPrecondition)]
    [InlineData(SliceRefusalKind.NotInCohort, Grpc.Core.StatusCode.PermissionDenied)]
    [InlineData(SliceRefusalKind.NotExpected, Grpc.Core.StatusCode.InvalidArgument)]
    [InlineData(SliceRefusalKind.NoSuchSlice, Grpc.Core.StatusCode.InvalidArgument)]
    [InlineData(SliceRefusalKind.AlreadySent, Grpc.Core.StatusCode.AlreadyExists)]
    [InlineData(SliceRefusalKind.WholeInputsOnly, Grpc.Core.StatusCode.FailedPrecondition)]
    public void Code_EachRefusal_HasItsStatus(SliceRefusalKind kind, Grpc.Core.StatusCode code)
        => Assert.Equal(code, SiloFrontService.Code(kind));

    [Fact]
    public void UploadLayout_EverySliceServed_IsVersion4ElseNone()
    {
        var layout = new SliceLayout(2500, 1024);

        SliceUploadLayout? all = ClusterRoundServerFactory.UploadLayout(layout, ["https://127.0.0.1:1", "https://127.0.0.1:2", "https://127.0.0.1:3"]);
        SliceUploadLayout? partial = ClusterRoundServerFactory.UploadLayout(layout, ["https://127.0.0.1:1", "", "https://127.0.0.1:3"]);

        Assert.NotNull(all);
        Assert.Equal(3, all.Count);
        Assert.Equal(452, all.Length(2));
        Assert.Equal("https://127.0.0.1:2", all.Endpoints[1]);
        Assert.Null(partial);
    }

    [Fact]
    public void UploadLayout_SlicesOnMoreHostsThanAnAgentUploadsTo_WholeUploadsOnly()
    {
        // A cluster with more slice silos than an agent's cap announced them all: every agent declined every round
        // ("the round's slice endpoints name 65 hosts; this site uploads to at most 64").
        int count = SecureFed.Protocol.SliceUploadHosts.Max + 1;
        var layout = new SliceLayout(count * 10, 10);
        string[] distinct = [.. Enumerable.Range(0, count).Select(i => $"https://silo-{i}:7443")];
        string[] capped = [.. distinct[..^1], distinct[0]];

        Assert.Null(ClusterRoundServerFactory.UploadLayout(layout, distinct));
        SliceUploadLayout? atTheCap = ClusterRoundServerFactory.UploadLayout(layout, capped);
        Assert.NotNull(atTheCap);
        var announcement = new SecureFed.Wire.V1.RoundAnnouncement { ProtocolVersion = 4, VectorLength = (uint)atTheCap.VectorLength, SliceUploads = new() { SliceSize = (uint)atTheCap.SliceSize } };
        announcement.SliceUploads.Endpoints.AddRange(atTheCap.Endpoints);
        Assert.Null(SecureFed.Agent.AgentRunner.CheckVersion(announcement, 4)); // what the agents are announced, they take
    }
}
