using System.Net.Security;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using SecureFed.Aggregator;
using SecureFed.Cluster.Front;
using SecureFed.Federation;
using SecureFed.Protocol;
using SecureFed.Wire.V1;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A slice silo's gRPC service (protocol version 4, docs/cluster.md §6) over mTLS on one silo of the in-process
/// three-silo cluster, with a real round at its masked-input stage: every wrong upload is refused with its reason, a
/// right one lands in the local slice grain, and a site counts as having sent its input only once every slice is in.
/// </summary>
public sealed class SliceUploadServiceTests : IClassFixture<ThreeSiloCluster>, IDisposable
{
    private const string Federation = "slice-front";
    private const int M = 300;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly ThreeSiloCluster _cluster;
    private readonly ITestOutputHelper _output;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-slice-front-").FullName;

    public SliceUploadServiceTests(ThreeSiloCluster cluster, ITestOutputHelper output)
    {
        _cluster = cluster;
        _output = output;
    }

    [Fact]
    public async Task UploadMaskedInput_SliceSilo_RefusesEachWrongUploadWithItsReasonAndCountsOnlyCompleteSites()
    {
        // Arrange: a round of 5 sites in 3 slices of 100 words at its masked-input stage; the service of the silo hosting slice 0.
        using var script = new RoundScript(5, seed: 31, round: 31, M, bitWidth: 20, degree: 4, Federation);
        var round = new ClusterRoundClient(_cluster.Grains, Federation, 31);
        await round.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(Timeout);
        await script.ThroughShareKeysAsync(round, []);
        string host = await round.Slice(0).SiloAsync().WaitAsync(Timeout);
        var silo = (InProcessSiloHandle)_cluster.Cluster.Silos.Single(s => s.SiloAddress.ToParsableString() == host);
        ProvisionResult federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation"), Federation,
            [.. script.Parameters.Participants.Select(p => p.Name)], "127.0.0.1"));
        using PartyKit aggregatorKit = PartyKit.Load(federation.AggregatorKitDirectory);
        using var front = new SliceFront(Federation, aggregatorKit, silo.SiloHost.Services.GetRequiredService<IGrainFactory>(), host, maxConcurrentUploads: 2)
        {
            Rounds = silo.SiloHost.Services.GetRequiredService<SiloRounds>(),
        };
        await using WebApplication app = SliceFrontHost.Build(new Uri("https://127.0.0.1:0"), front);
        await app.StartAsync().WaitAsync(Timeout);
        using PartyKit siteKit = PartyKit.Load(federation.SiteKitDirectories["site-002"]);
        using GrpcChannel channel = Channel(SliceFrontHost.BoundAddress(app), siteKit);
        var client = new Wire.V1.Aggregation.AggregationClient(channel);

        uint[] masked = await MaskAsync(script, round, 2);
        uint[][] slices = [masked[..100], masked[100..200], masked[200..]];
        string[] digests = [.. slices.Select(Sha)];
        Header Good(Action<Header>? change = null)
        {
            var header = new Header { FederationId = Federation, Round = 31, SessionId = script.Parameters.SessionId, Stage = Stage.MaskedInput, Sender = "site-002" };
            change?.Invoke(header);
            return header;
        }


        // Act + assert: each wrong upload is refused with its reason, and nothing of it reaches the round.
        await AssertRefusedAsync(client, Good(h => h.Sender = "site-003"), 0, slices[0], digests[0], StatusCode.PermissionDenied,
            "the header names sender 'site-003' but the client certificate belongs to 'site-002'");
        await AssertRefusedAsync(client, Good(h => h.Round = 99), 0, slices[0], digests[0], StatusCode.FailedPrecondition, "round 99 is not open at this silo");
        await AssertRefusedAsync(client, Good(h => h.SessionId = "replayed"), 0, slices[0], digests[0], StatusCode.FailedPrecondition,
            "the message is for round 31 session 'replayed', but the current round is 31");
        await AssertRefusedAsync(client, Good(), 7, slices[0], digests[0], StatusCode.InvalidArgument, "slice 7 does not exist; the round has 3 slices");
        await AssertRefusedAsync(client, Good(), 1, slices[1], digests[1], StatusCode.FailedPrecondition, "slice 1 is not hosted by this silo; upload it to");
        await AssertRefusedAsync(client, Good(), 0, slices[0], Sha(new uint[100]), StatusCode.DataLoss, "slice 0 does not match the SHA-256 announced in its first chunk");
        await AssertRefusedAsync(client, Good(), 0, slices[1][..50], Sha(slices[1][..50]), StatusCode.InvalidArgument, "slice 0 announces 50 words; the round's slice 0 has 100");
        await AssertRefusedAsync(client, Good(), null, masked, Sha(masked), StatusCode.FailedPrecondition, "this silo takes slices of the masked input only");
        Assert.Equal(0, front.SlicesAccepted);

        // The right slice is taken once (a retry is a duplicate); the site is not in U3 until its other slices arrive.
        Assert.False((await UploadAsync(client, Good(), 0, slices[0], digests[0])).Duplicate);
        Assert.True((await UploadAsync(client, Good(), 0, slices[0], digests[0])).Duplicate);
        Assert.Equal(1, front.SlicesAccepted);
        Assert.DoesNotContain(2, (await round.Round.ProgressAsync().WaitAsync(Timeout)).Delivered);
        Assert.Empty(await round.Round.SliceDigestsAsync(2).WaitAsync(Timeout));
        Assert.True(await round.SendSliceAsync(2, 1, slices[1], digests[1], CancellationToken.None).WaitAsync(Timeout));
        Assert.True(await round.SendSliceAsync(2, 2, slices[2], digests[2], CancellationToken.None).WaitAsync(Timeout));
        Assert.Contains(2, (await round.Round.ProgressAsync().WaitAsync(Timeout)).Delivered);
        Assert.Equal(digests, await round.Round.SliceDigestsAsync(2).WaitAsync(Timeout));
        await AssertRefusedAsync(client, Good(), 0, slices[0], digests[0], StatusCode.AlreadyExists, "index 2: already sent its masked input (every slice)");
        script.Single.AcceptMaskedInput(2, masked);

        // Site 3 sends two of its three slices only: it is treated as not having sent its input (as a dropout).
        uint[] partial = await MaskAsync(script, round, 3);
        Assert.True(await round.SendSliceAsync(3, 0, partial.AsMemory(0, 100), Sha(partial[..100]), CancellationToken.None).WaitAsync(Timeout));
        Assert.True(await round.SendSliceAsync(3, 1, partial.AsMemory(100, 100), Sha(partial[100..200]), CancellationToken.None).WaitAsync(Timeout));
        await script.SendMaskedInputsAsync(round, [4, 5]);
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(round, []);
        Assert.Equal([2, 4, 5], clustered.Contributors);
        Assert.Equal(single.Sum, clustered.Sum);
        Assert.Equal(script.ExpectedSum([2, 4, 5]), clustered.Sum);
        await HostStop.StopAsync(app, _output);
    }

    /// <summary>
    /// A round grain is activated by any call to its key: a slice upload naming a round whose slices this silo never opened
    /// (0, one far ahead, the largest the header can carry) is refused by the front before it calls any grain, so a site
    /// naming round after round makes the cluster activate nothing. Before, the front asked the round grain of each
    /// round named, which activated it (and it stayed until Orleans collected it as idle).
    /// </summary>
    [Fact]
    public async Task UploadMaskedInput_RoundNeverOpenedAtThisSilo_RefusedBeforeAnyRoundGrainIsActivated()
    {
        var silo = (InProcessSiloHandle)_cluster.Cluster.Silos[0];
        string host = silo.SiloAddress.ToParsableString();
        ProvisionResult federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation-rounds"), Federation, ["site-001"], "127.0.0.1"));
        using PartyKit aggregatorKit = PartyKit.Load(federation.AggregatorKitDirectory);
        using var front = new SliceFront(Federation, aggregatorKit, silo.SiloHost.Services.GetRequiredService<IGrainFactory>(), host, maxConcurrentUploads: 2)
        {
            Rounds = silo.SiloHost.Services.GetRequiredService<SiloRounds>(),
        };
        await using WebApplication app = SliceFrontHost.Build(new Uri("https://127.0.0.1:0"), front);
        await app.StartAsync().WaitAsync(Timeout);
        using PartyKit siteKit = PartyKit.Load(federation.SiteKitDirectories["site-001"]);
        using GrpcChannel channel = Channel(SliceFrontHost.BoundAddress(app), siteKit);
        var client = new Wire.V1.Aggregation.AggregationClient(channel);
        uint[] words = new uint[100];

        foreach (ulong round in new ulong[] { 0, 7_777, 7_778, ulong.MaxValue })
        {
            var header = new Header { FederationId = Federation, Round = round, SessionId = "s", Stage = Stage.MaskedInput, Sender = "site-001" };
            await AssertRefusedAsync(client, header, 0, words, Sha(words), StatusCode.FailedPrecondition,
                $"round {(long)Math.Min(round, long.MaxValue)} is not open at this silo (no slice of it was opened here, or it is long over); stale messages are refused");
        }

        IManagementGrain management = _cluster.Grains.GetGrain<IManagementGrain>(0);
        foreach (long round in new[] { 0L, 7_777L, 7_778L, long.MaxValue })
        {
            var grain = (GrainReference)(object)_cluster.Grains.GetGrain<Grains.IRoundGrain>(ClusterKeys.Round(Federation, round));
            Assert.Equal(0, await management.GetGrainActivationCount(grain).WaitAsync(Timeout));
        }

        await HostStop.StopAsync(app, _output);
    }

    [Fact]
    public async Task UploadMaskedInput_SiteStallsMoreSliceUploadsThanSlots_HonestRoundAndNextRoundCompleteThroughThatSilo()
    {
        // Arrange: rounds of 5 sites in 3 slices of 100 words; the service of the silo hosting slice 0 (every round: placement
        // by slice index) with 2 upload slots, asking the round grain every 200 ms whether the masked-input stage is open.
        using var script = new RoundScript(5, seed: 32, round: 32, M, bitWidth: 20, degree: 4, Federation);
        await using SliceSilo silo = await SliceSilo.StartAsync(this, script, slots: 2, TimeSpan.FromMilliseconds(200));

        // Act: site-001 opens slice-0 uploads (a valid first chunk of half the slice, then nothing): one is read, as many
        // as the round has slices wait for its turn; a further one is refused at once.
        uint[] hostile = await MaskAsync(script, silo.Round, 1);
        var stalled = new List<AsyncClientStreamingCall<MaskedInputChunk, Ack>>();
        for (int i = 0; i < 5; i++)
        {
            AsyncClientStreamingCall<MaskedInputChunk, Ack> call = await silo.OpenHalfSliceAsync(script, 1, hostile);
            if (i < 4)
            {
                stalled.Add(call);
                await WaitUntilAsync(() => silo.Front.UploadsOf("site-001") == i + 1, $"site-001's upload {i + 1} open at the silo");
            }
            else
            {
                using (call)
                {
                    RpcException refused = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync.WaitAsync(Timeout));
                    Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
                    Assert.Contains("site 'site-001' already has 4 masked-input uploads open at this silo (one is read at a time, at most 3 wait)", refused.Status.Detail, StringComparison.Ordinal);
                }
            }
        }

        // The honest sites' uploads through the same silo go on, and their round completes without site-001.
        await silo.SendHonestAsync(script, silo.Round, [2, 3, 4, 5]);
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(silo.Round, []);

        // Assert: the round's sum is the honest sites'; site-001's stalled uploads ended when the stage closed, and its
        // slots are free again.
        Assert.Equal([2, 3, 4, 5], clustered.Contributors);
        Assert.Equal(single.Sum, clustered.Sum);
        Assert.Equal(script.ExpectedSum([2, 3, 4, 5]), clustered.Sum);
        foreach (AsyncClientStreamingCall<MaskedInputChunk, Ack> call in stalled)
        {
            await AssertClosedAsync(call, 32);
        }

        Assert.Equal(0, silo.Front.UploadsOf("site-001"));

        // The next round through the same silo completes with every site, site-001 included. Slice k goes to the k-th silo of
        // the placing silo's membership view (SlicePlacementDirector); on a loaded machine that view can briefly lack a silo
        // (the fresh-clone CI of 11abced placed round 33's slice 0 elsewhere), so a round is opened again, under another
        // number, until its slice 0 is on this silo.
        (RoundScript next, ClusterRoundClient nextRound) = await OpenOnSiloAsync(silo.Host, 33);
        using RoundScript disposeNext = next;
        await next.ThroughShareKeysAsync(nextRound, []);
        await silo.SendHonestAsync(next, nextRound, [1, 2, 3, 4, 5]);
        (AggregationResult nextSingle, AggregationResult nextClustered) = await next.FinishAsync(nextRound, []);
        Assert.Equal([1, 2, 3, 4, 5], nextClustered.Contributors);
        Assert.Equal(nextSingle.Sum, nextClustered.Sum);
        Assert.Equal(9, silo.Front.SlicesAccepted);
        foreach (AsyncClientStreamingCall<MaskedInputChunk, Ack> call in stalled)
        {
            call.Dispose();
        }
    }

    [Fact]
    public async Task UploadMaskedInput_StalledSliceUpload_RefusedAsTooSlowAfterTheGraceAndTheRoundCompletes()
    {
        // Arrange: the silo of slice 0 with 2 slots and a floor of 1,000 words a second after 1 s (UploadPace), and a stage
        // check that never comes in the test (1 h): only the floor can end site-001's stalled upload.
        using var script = new RoundScript(5, seed: 35, round: 35, M, bitWidth: 20, degree: 4, Federation);
        await using SliceSilo silo = await SliceSilo.StartAsync(this, script, slots: 2, TimeSpan.FromHours(1), new UploadPace(1_000, 1));
        uint[] hostile = await MaskAsync(script, silo.Round, 1);

        // Act: half of slice 0 (50 words), then nothing.
        using AsyncClientStreamingCall<MaskedInputChunk, Ack> stalled = await silo.OpenHalfSliceAsync(script, 1, hostile);

        // Assert: refused for its pace, naming the floor, its slot free again; the honest sites' round completes.
        RpcException ended = await Assert.ThrowsAsync<RpcException>(() => stalled.ResponseAsync.WaitAsync(Timeout));
        Assert.Equal(StatusCode.ResourceExhausted, ended.StatusCode);
        Assert.Contains("this site's uploads of the round delivered 50 words", ended.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("slower than the floor of 1000 words a second after a grace of 1 s", ended.Status.Detail, StringComparison.Ordinal);
        await WaitUntilAsync(() => silo.Front.UploadsOf("site-001") == 0, "site-001's slot given back");
        await silo.SendHonestAsync(script, silo.Round, [2, 3, 4, 5]);
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(silo.Round, []);
        Assert.Equal([2, 3, 4, 5], clustered.Contributors);
        Assert.Equal(single.Sum, clustered.Sum);
    }

    [Fact]
    public async Task UploadMaskedInput_StalledSliceUploadsResumeAfterTheRoundCompleted_RefusedAsClosedNotAborted()
    {
        // Arrange: a round of 5 sites in 3 slices; the silo hosting slice 0 with 2 upload slots and a stage check that never
        // comes in the test (1 h), so site-001's uploads see the round end only when they go on. Site-001 opens two slice-0
        // uploads with half the slice each: one is read, one waits for the site's turn.
        using var script = new RoundScript(5, seed: 34, round: 34, M, bitWidth: 20, degree: 4, Federation);
        await using SliceSilo silo = await SliceSilo.StartAsync(this, script, slots: 2, TimeSpan.FromHours(1));
        uint[] late = await MaskAsync(script, silo.Round, 1);
        using AsyncClientStreamingCall<MaskedInputChunk, Ack> read = await silo.OpenHalfSliceAsync(script, 1, late);
        await WaitUntilAsync(() => silo.Front.UploadsOf("site-001") == 1, "site-001's first upload open at the silo");
        using AsyncClientStreamingCall<MaskedInputChunk, Ack> waiting = await silo.OpenHalfSliceAsync(script, 1, late);
        await WaitUntilAsync(() => silo.Front.UploadsOf("site-001") == 2, "site-001's second upload waiting at the silo");

        // The round completes without site-001 (its slice grains are read and ended).
        await silo.SendHonestAsync(script, silo.Round, [2, 3, 4, 5]);
        (_, AggregationResult clustered) = await script.FinishAsync(silo.Round, []);
        Assert.Equal([2, 3, 4, 5], clustered.Contributors);

        // Act: site-001 sends the rest of the read upload and ends it, which frees the slot for the waiting one.
        var rest = new MaskedInputChunk { Offset = 50 };
        rest.Words.AddRange(late[50..100]);
        await read.RequestStream.WriteAsync(rest).WaitAsync(Timeout);
        await read.RequestStream.CompleteAsync().WaitAsync(Timeout);

        // Assert: both are told the stage closed before they finished (the round did not abort: the read one's slice grain
        // had ended, the waiting one is refused as soon as it gets the slot), and the slots are free.
        await AssertClosedAsync(read, 34);
        await AssertClosedAsync(waiting, 34);
        Assert.Equal(0, silo.Front.UploadsOf("site-001"));
        Assert.Equal(4, silo.Front.SlicesAccepted);
    }

    [Fact]
    public async Task OpenAsync_EverySiloServesAgents_AnnouncesEachSliceAtItsSiloAndCoordinatorRefusesOthers()
    {
        // Arrange: every silo of the in-process cluster with an agent endpoint; the coordinator is silo 0.
        var silos = _cluster.Cluster.Silos.Cast<InProcessSiloHandle>().ToArray();
        var endpoints = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < silos.Length; i++)
        {
            var url = new Uri($"https://127.0.0.1:{17000 + i}");
            silos[i].SiloHost.Services.GetRequiredService<SiloAgentEndpoint>().Set(url);
            endpoints[silos[i].SiloAddress.ToParsableString()] = url.GetLeftPart(UriPartial.Authority);
        }

        string coordinator = silos[0].SiloAddress.ToParsableString();
        var factory = new ClusterRoundServerFactory(silos[0].SiloHost.Services.GetRequiredService<IGrainFactory>(), 1024,
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, coordinator);
        using var script = new RoundScript(4, seed: 41, round: 41, 2500, bitWidth: 32, degree: 3, Federation);

        // Act
        Aggregator.IRoundServer server = await factory.OpenAsync(script.Parameters, CancellationToken.None).WaitAsync(Timeout);

        // Assert: version 4 with one endpoint per slice, each its host's; the coordinator takes only its own slices.
        Assert.NotNull(server.SliceUploads);
        Assert.Equal(3, server.SliceUploads.Count);
        var round = new ClusterRoundClient(_cluster.Grains, Federation, 41);
        for (int k = 0; k < 3; k++)
        {
            string host = await round.Slice(k).SiloAsync().WaitAsync(Timeout);
            Assert.Equal(endpoints[host], server.SliceUploads.Endpoints[k]);
            Assert.Equal(host == coordinator ? null : endpoints[host], await server.SliceElsewhereAsync(k, CancellationToken.None).WaitAsync(Timeout));
        }

        await server.AbortAsync("test over", CancellationToken.None).WaitAsync(Timeout);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static async Task AssertClosedAsync(AsyncClientStreamingCall<MaskedInputChunk, Ack> call, int round)
    {
        RpcException ended = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync.WaitAsync(Timeout));
        Assert.Equal(StatusCode.FailedPrecondition, ended.StatusCode);
        Assert.Equal($"the masked-input stage of round {round} closed before this upload finished", ended.Status.Detail);
    }

    private static async Task<uint[]> MaskAsync(RoundScript script, ClusterRoundClient round, int site)
    {
        EncryptedShare[] forMe = await round.Round.SharesForAsync(site).WaitAsync(Timeout);
        var masked = new uint[M];
        script.Client(site).MaskInput(forMe, script.Inputs[site - 1], masked);
        return masked;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        DateTime until = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }

    private static async Task AssertRefusedAsync(Wire.V1.Aggregation.AggregationClient client, Header header, uint? slice, uint[] words, string sha, StatusCode code, string reason)
    {
        RpcException ex = await Assert.ThrowsAsync<RpcException>(() => UploadAsync(client, header, slice, words, sha));
        Assert.Equal(code, ex.StatusCode);
        Assert.Contains(reason, ex.Status.Detail, StringComparison.Ordinal);
    }

    private static async Task<Ack> UploadAsync(Wire.V1.Aggregation.AggregationClient client, Header header, uint? slice, uint[] words, string sha)
    {
        using AsyncClientStreamingCall<MaskedInputChunk, Ack> call = client.UploadMaskedInput(deadline: DateTime.UtcNow + Timeout);
        var first = new MaskedInputChunk { Header = header, Offset = 0, TotalWords = (uint)words.Length, Sha256 = sha };
        if (slice is uint k)
        {
            first.Slice = k;
        }

        first.Words.AddRange(words);
        try
        {
            await call.RequestStream.WriteAsync(first);
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // refused before the stream was read to its end: the status comes with the response
        }
        catch (InvalidOperationException)
        {
            // the call already completed with its status
        }

        return await call.ResponseAsync.WaitAsync(Timeout);
    }

    private static string Sha(uint[] words) => Convert.ToHexStringLower(WireEncoding.VectorDigest(words));

    private static GrpcChannel Channel(Uri address, PartyKit kit) => GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = [kit.TlsCertificate],
                RemoteCertificateValidationCallback = PeerTrust.AggregatorValidationCallback(kit.Manifest),
            },
        },
        DisposeHttpClient = true,
    });

    /// <summary>
    /// A round at its masked-input stage (after share keys) and the gRPC service of the silo hosting its slice 0, with
    /// every site's kit and an mTLS channel per site.
    /// </summary>
    /// <summary>
    /// Opens round <paramref name="round"/> (then 330,000 + 1, 2, … while its slice 0 lands on another silo, up to 10 tries
    /// 1 s apart, each such round aborted) and returns the first whose slice 0 is on <paramref name="host"/>.
    /// </summary>
    private async Task<(RoundScript Script, ClusterRoundClient Round)> OpenOnSiloAsync(string host, long round)
    {
        string? elsewhere = null;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            long number = attempt == 0 ? round : 330_000 + attempt;
            var script = new RoundScript(5, seed: (int)(number % 100_000), round: number, M, bitWidth: 20, degree: 4, Federation);
            var client = new ClusterRoundClient(_cluster.Grains, Federation, number);
            await client.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(Timeout);
            elsewhere = await client.Slice(0).SiloAsync().WaitAsync(Timeout);
            if (elsewhere == host)
            {
                return (script, client);
            }

            await client.Round.AbortAsync("test: slice 0 placed on another silo").WaitAsync(Timeout);
            script.Dispose();
            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        throw new Xunit.Sdk.XunitException($"slice 0 of 10 rounds opened 1 s apart was never placed on {host} again (last on {elsewhere}): the cluster's membership changed for good");
    }

    private sealed class SliceSilo : IAsyncDisposable
    {
        private PartyKit? _aggregatorKit;
        private PartyKit[] _kits = [];
        private GrpcChannel[] _channels = [];
        private WebApplication? _app;
        private ITestOutputHelper? _output;

        public required ClusterRoundClient Round { get; init; }

        public required string Host { get; init; }

        public SliceFront Front { get; private set; } = null!;

        /// <summary>
        /// The silo of slice 0 with its own front; <paramref name="pace"/> null turns the upload floor off (the tests of
        /// stalled uploads check the stage's close, which a slow machine must not pre-empt with the floor's refusal).
        /// </summary>
        public static async Task<SliceSilo> StartAsync(SliceUploadServiceTests test, RoundScript script, int slots, TimeSpan stageCheck, UploadPace? pace = null)
        {
            var round = new ClusterRoundClient(test._cluster.Grains, Federation, script.Parameters.Round);
            await round.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(Timeout);
            await script.ThroughShareKeysAsync(round, []);
            string host = await round.Slice(0).SiloAsync().WaitAsync(Timeout);
            var handle = (InProcessSiloHandle)test._cluster.Cluster.Silos.Single(s => s.SiloAddress.ToParsableString() == host);
            ProvisionResult federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(test._dir, $"federation-{script.Parameters.Round}"), Federation,
                [.. script.Parameters.Participants.Select(p => p.Name)], "127.0.0.1"));
            var silo = new SliceSilo { Round = round, Host = host, _output = test._output };
            try
            {
                silo._aggregatorKit = PartyKit.Load(federation.AggregatorKitDirectory);
                silo.Front = new SliceFront(Federation, silo._aggregatorKit, handle.SiloHost.Services.GetRequiredService<IGrainFactory>(), host, maxConcurrentUploads: slots)
                {
                    StageCheckInterval = stageCheck,
                    Rounds = handle.SiloHost.Services.GetRequiredService<SiloRounds>(),
                    Pace = pace ?? new UploadPace(0, UploadPace.DefaultGraceSeconds),
                };
                silo._app = SliceFrontHost.Build(new Uri("https://127.0.0.1:0"), silo.Front);
                await silo._app.StartAsync().WaitAsync(Timeout);
                silo._kits = [.. Enumerable.Range(1, script.Parameters.Participants.Count).Select(i => PartyKit.Load(federation.SiteKitDirectories[$"site-{i:D3}"]))];
                silo._channels = [.. silo._kits.Select(k => Channel(SliceFrontHost.BoundAddress(silo._app), k))];
                return silo;
            }
            catch
            {
                await silo.DisposeAsync();
                throw;
            }
        }

        public Wire.V1.Aggregation.AggregationClient Client(int site) => new(_channels[site - 1]);

        public static Header HeaderOf(RoundScript script, int site) => new()
        {
            FederationId = Federation, Round = (ulong)script.Parameters.Round, SessionId = script.Parameters.SessionId, Stage = Stage.MaskedInput, Sender = $"site-{site:D3}",
        };

        /// <summary>Opens an upload of slice 0 of <paramref name="masked"/> and sends only its first half.</summary>
        public async Task<AsyncClientStreamingCall<MaskedInputChunk, Ack>> OpenHalfSliceAsync(RoundScript script, int site, uint[] masked)
        {
            var first = new MaskedInputChunk { Header = HeaderOf(script, site), Slice = 0, Offset = 0, TotalWords = 100, Sha256 = Sha(masked[..100]) };
            first.Words.AddRange(masked[..50]);
            AsyncClientStreamingCall<MaskedInputChunk, Ack> call = Client(site).UploadMaskedInput(deadline: DateTime.UtcNow + TimeSpan.FromMinutes(3));
            await call.RequestStream.WriteAsync(first).WaitAsync(Timeout);
            return call;
        }

        /// <summary>
        /// Slice 0 of each site's masked input through this silo's service, every site at once (as agents upload
        /// concurrently); slices 1 and 2 to their grains.
        /// </summary>
        public async Task SendHonestAsync(RoundScript script, ClusterRoundClient round, int[] sites)
        {
            var uploads = new List<Task<Ack>>();
            foreach (int u in sites)
            {
                uint[] masked = await MaskAsync(script, round, u);
                script.Single.AcceptMaskedInput(u, masked);
                uploads.Add(UploadAsync(Client(u), HeaderOf(script, u), 0, masked[..100], Sha(masked[..100])));
                Assert.True(await round.SendSliceAsync(u, 1, masked.AsMemory(100, 100), Sha(masked[100..200]), CancellationToken.None).WaitAsync(Timeout));
                Assert.True(await round.SendSliceAsync(u, 2, masked.AsMemory(200, 100), Sha(masked[200..]), CancellationToken.None).WaitAsync(Timeout));
            }

            Assert.All(await Task.WhenAll(uploads).WaitAsync(Timeout), ack => Assert.False(ack.Duplicate));
        }

        public async ValueTask DisposeAsync()
        {
            foreach (GrpcChannel channel in _channels)
            {
                channel.Dispose();
            }

            if (_app is not null)
            {
                await HostStop.StopAsync(_app, _output);
                await _app.DisposeAsync();
            }

            Front?.Dispose();
            foreach (PartyKit kit in _kits)
            {
                kit.Dispose();
            }

            _aggregatorKit?.Dispose();
        }
    }
}
