using System.Net.Http;
using Grpc.Core;
using SecureFed.Agent;
using SecureFed.Wire.V1;

namespace SecureFed.Cluster.Tests;

/// <summary>Agents with several aggregator endpoints and protocol version 4 announcements (docs/cluster.md §6), without a server.</summary>
public sealed class AgentEndpointsTests
{
    [Fact]
    public void AggregatorEndpoints_SingleUrl_StillValid()
    {
        var options = new AgentOptions { Aggregator = "https://aggregator.example:7443" };
        var errors = new List<string>();

        Uri endpoint = Assert.Single(options.AggregatorEndpoints(errors));

        Assert.Empty(errors);
        Assert.Equal(new Uri("https://aggregator.example:7443"), endpoint);
    }

    [Fact]
    public void AggregatorEndpoints_CommaSeparatedList_InOrder()
    {
        var options = new AgentOptions { Aggregator = "https://silo-1:7443, https://silo-2:7443" };
        var errors = new List<string>();

        IReadOnlyList<Uri> endpoints = options.AggregatorEndpoints(errors);

        Assert.Empty(errors);
        Assert.Equal([new Uri("https://silo-1:7443"), new Uri("https://silo-2:7443")], endpoints);
    }

    [Theory]
    [InlineData("", "SecureFed:Aggregator must be an https:// URL, got ''.")]
    [InlineData("http://a:1", "SecureFed:Aggregator must be an https:// URL, got 'http://a:1'.")]
    [InlineData("https://a:1,,https://b:1", "SecureFed:Aggregator entry 2 of 3 is empty: separate the aggregator's https:// URLs with single commas")]
    [InlineData("https://a:1,http://b:1", "SecureFed:Aggregator entry 2 of 2 must be an https:// URL, got 'http://b:1'.")]
    [InlineData("https://a:1,https://A:1/", "SecureFed:Aggregator entry 2 of 2 repeats 'https://A:1/'.")]
    [InlineData("https://a:1,https://b:1/grpc", "SecureFed:Aggregator entry 2 of 2 must be an https://host:port URL without a path")]
    public void Validate_BadAggregatorList_NamesTheEntry(string aggregator, string expected)
    {
        var options = new AgentOptions { Site = "site-a", Aggregator = aggregator };

        IReadOnlyList<string> problems = options.Validate();

        Assert.Contains(problems, p => p.StartsWith(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void ShouldTryNextEndpoint_UnavailableOrUnimplemented_OtherAnswersStay()
    {
        var refused = new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.", new HttpRequestException("Connection refused")));
        var sliceSilo = new RpcException(new Status(StatusCode.Unimplemented, "Service is unimplemented."));
        var frontWithoutCoordinator = new RpcException(new Status(StatusCode.Unavailable, "silo s2 could not reach the coordinator s1 (lease epoch 1, expiring …) at https://10.0.0.1:7443: Connection refused"));
        var refusedRound = new RpcException(new Status(StatusCode.FailedPrecondition, "round 2 is not open"));
        var denied = new RpcException(new Status(StatusCode.PermissionDenied, "not in cohort"));
        var overloaded = new RpcException(new Status(StatusCode.ResourceExhausted, "too many uploads"));

        Assert.True(AggregatorClient.ShouldTryNextEndpoint(refused));
        Assert.True(AggregatorClient.ShouldTryNextEndpoint(sliceSilo));
        Assert.True(AggregatorClient.ShouldTryNextEndpoint(frontWithoutCoordinator));
        Assert.False(AggregatorClient.ShouldTryNextEndpoint(refusedRound));
        Assert.False(AggregatorClient.ShouldTryNextEndpoint(denied));
        Assert.False(AggregatorClient.ShouldTryNextEndpoint(overloaded));
    }

    [Fact]
    public void CheckVersion_Version3_RunByEveryAgent()
    {
        var announcement = new RoundAnnouncement { ProtocolVersion = 3, VectorLength = 2500 };

        Assert.Null(AgentRunner.CheckVersion(announcement, 3));
        Assert.Null(AgentRunner.CheckVersion(announcement, 4));
    }

    [Fact]
    public void CheckVersion_Version4WithLayout_RunOnlyByVersion4Agents()
    {
        RoundAnnouncement announcement = Sliced(2500, 1024, "https://s1:1", "https://s2:1", "https://s3:1");

        Assert.Null(AgentRunner.CheckVersion(announcement, 4));
        Assert.Equal("the round runs protocol version 4; this site speaks version 3", AgentRunner.CheckVersion(announcement, 3));
    }

    [Fact]
    public void CheckVersion_BadSliceLayout_RefusedSayingWhy()
    {
        Assert.Equal("the round's vector of 2500 words in slices of 1024 has 3 slices, but the announcement names 2 slice endpoints",
            AgentRunner.CheckVersion(Sliced(2500, 1024, "https://s1:1", "https://s2:1"), 4));
        Assert.Equal("the endpoint of slice 1 must be an https:// URL, got 'http://s2:1'",
            AgentRunner.CheckVersion(Sliced(2500, 1024, "https://s1:1", "http://s2:1", "https://s3:1"), 4));
        Assert.StartsWith("the round runs protocol version 4 but announces no slice layout",
            AgentRunner.CheckVersion(new RoundAnnouncement { ProtocolVersion = 4, VectorLength = 2500 }, 4), StringComparison.Ordinal);
        Assert.Equal("the round runs protocol version 5; this site speaks versions 3 and 4", AgentRunner.CheckVersion(new RoundAnnouncement { ProtocolVersion = 5 }, 4));
    }

    [Fact]
    public void CheckVersion_OneSliceLargerThanTheVector_RunAndAboveIntMaxRefused()
    {
        // The cluster announces its configured slice size (default 4 Mi words) unclamped: a model of fewer words is one
        // slice. A check of this session refused it (review of the change); only a size SliceOf cannot take is refused.
        Assert.Null(AgentRunner.CheckVersion(Sliced(2500, 4 * 1024 * 1024, "https://s1:1"), 4));
        Assert.Equal(2500, AgentRunner.SliceOf([.. Enumerable.Range(0, 2500).Select(i => (uint)i)], 4 * 1024 * 1024, 0).Length);
        Assert.Equal("the round's slice size 2147483648 exceeds 2147483647 words", AgentRunner.CheckVersion(Sliced(2500, 0x8000_0000u, "https://s1:1"), 4));
    }

    [Fact]
    public void CheckVersion_MoreSliceHostsThanTheCap_Refused()
    {
        // A channel per host, all uploading at once: at slice size 1 an announcement could name one host per word.
        string[] many = [.. Enumerable.Range(0, AgentRunner.MaxSliceHosts + 1).Select(i => $"https://silo-{i}:7443")];
        string[] capped = [.. many[..AgentRunner.MaxSliceHosts], many[0]];

        Assert.Equal($"the round's slice endpoints name {AgentRunner.MaxSliceHosts + 1} hosts; this site uploads to at most {AgentRunner.MaxSliceHosts}",
            AgentRunner.CheckVersion(Sliced((uint)many.Length, 1, many), 4));
        Assert.Null(AgentRunner.CheckVersion(Sliced((uint)capped.Length, 1, capped), 4)); // many slices on the cap's hosts
    }

    [Fact]
    public void SliceOf_CutsTheVectorAsTheAnnouncementSays()
    {
        uint[] words = [.. Enumerable.Range(0, 2500).Select(i => (uint)i)];

        Assert.Equal(1024, AgentRunner.SliceOf(words, 1024, 0).Length);
        Assert.Equal(1024u, AgentRunner.SliceOf(words, 1024, 1).Span[0]);
        Assert.Equal(452, AgentRunner.SliceOf(words, 1024, 2).Length);
    }

    private static RoundAnnouncement Sliced(uint m, uint size, params string[] endpoints)
    {
        var announcement = new RoundAnnouncement { ProtocolVersion = 4, VectorLength = m, SliceUploads = new SliceUploads { SliceSize = size } };
        announcement.SliceUploads.Endpoints.AddRange(endpoints);
        return announcement;
    }
}
