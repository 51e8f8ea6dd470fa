using System.Net.Security;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Cluster.Front;
using SecureFed.Cluster.Lease;
using SecureFed.Federation;
using SecureFed.Wire.V1;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// Every silo a front (docs/cluster.md §6), in one process: a silo's front service (<see cref="SiloFrontService"/> on
/// Kestrel with mTLS, on a silo of the in-process three-silo cluster) forwarding to an aggregator service in this process
/// (the same <c>AggregationService</c> the coordinator silo runs), and that service's side of the forwarded identity.
/// </summary>
public sealed class FrontForwardingTests : IClassFixture<ThreeSiloCluster>, IAsyncLifetime
{
    private const string Federation = "front-forward";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly ThreeSiloCluster _cluster;
    private readonly ITestOutputHelper _output;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-front-forward-").FullName;
    private FrontFederation _fed = null!;
    private WebApplication _coordinator = null!;
    private Uri _coordinatorUrl = null!;
    private string _data = null!;

    public FrontForwardingTests(ThreeSiloCluster cluster, ITestOutputHelper output)
    {
        _cluster = cluster;
        _output = output;
    }

    public async Task InitializeAsync()
    {
        _fed = new FrontFederation(Path.Combine(_dir, "fed"), Federation, ["site-a", "site-b"]);
        _data = Path.Combine(_dir, "aggregator");
        Dictionary<string, string?> settings = FrontFederation.Flatten(_fed.AggregatorSettings(_data, SiloProcess.FreePort(), rounds: 1));
        settings["SecureFed:Federation"] = Federation;
        settings["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        settings["SecureFed:MinSites"] = "2";
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        _coordinator = AggregatorHost.Build(configuration, (Func<float[]>?)null, logging => logging.SetMinimumLevel(LogLevel.Warning));
        await _coordinator.StartAsync().WaitAsync(Timeout);
        _coordinatorUrl = AggregatorHost.BoundAddress(_coordinator);
    }

    public async Task DisposeAsync()
    {
        await HostStop.StopAsync(_coordinator, _output);
        await _coordinator.DisposeAsync();
        await _fed.DisposeAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Calls_ThroughSiloFront_AnsweredByCoordinatorForTheSite()
    {
        // Arrange: a front on a silo of the cluster, forwarding to the aggregator service with the aggregator's certificate.
        var locator = new FixedLocator(new CoordinatorLeaseRecord(Federation, "S-coordinator", 3, DateTimeOffset.UtcNow.AddMinutes(1), _coordinatorUrl.GetLeftPart(UriPartial.Authority)));
        await using Front front = await Front.StartAsync(_fed, _cluster.Grains, locator, _output);
        using PartyKit siteA = PartyKit.Load(_fed.Provisioned.SiteKitDirectories["site-a"]);
        using GrpcChannel viaFront = Channel(front.Url, siteA);
        using GrpcChannel direct = Channel(_coordinatorUrl, siteA);
        var client = new Aggregation.AggregationClient(viaFront);

        // Act + assert: the status and the model come back as the coordinator sends them.
        FederationStatus status = await client.GetStatusAsync(new StatusRequest { Header = Header(Stage.Unspecified, "site-a") }, deadline: DateTime.UtcNow + Timeout);
        Assert.Equal(Federation, status.FederationId);
        Assert.Equal(1, front.Forwarder.CallsForwarded);
        List<ModelChunk> forwarded = await DownloadAsync(client);
        List<ModelChunk> straight = await DownloadAsync(new Aggregation.AggregationClient(direct));
        Assert.Equal(straight.Count, forwarded.Count);
        Assert.Equal(straight.SelectMany(c => c.Values), forwarded.SelectMany(c => c.Values));
        Assert.Equal(straight[0].Sha256, forwarded[0].Sha256);

        // The coordinator's refusal, status and detail unchanged: its checks run on the site the front authenticated.
        RpcException stale = await Assert.ThrowsAsync<RpcException>(() => client.AdvertiseKeysAsync(
            new AdvertiseKeysRequest { Header = Header(Stage.AdvertiseKeys, "site-a", round: 9) }, deadline: DateTime.UtcNow + Timeout).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, stale.StatusCode);
        Assert.StartsWith("the message is for round 9 session 's'", stale.Status.Detail, StringComparison.Ordinal);
        RpcException sender = await Assert.ThrowsAsync<RpcException>(() => client.GetStatusAsync(
            new StatusRequest { Header = Header(Stage.Unspecified, "site-b") }, deadline: DateTime.UtcNow + Timeout).ResponseAsync);
        Assert.Equal(StatusCode.PermissionDenied, sender.StatusCode);
        Assert.Equal("the header names sender 'site-b' but the client certificate belongs to 'site-a'", sender.Status.Detail);
        RpcException straightStale = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(direct).AdvertiseKeysAsync(
            new AdvertiseKeysRequest { Header = Header(Stage.AdvertiseKeys, "site-a", round: 8) }, deadline: DateTime.UtcNow + Timeout).ResponseAsync);

        // The coordinator's audit lines name the silo that vouched for the site (via) on the forwarded calls only.
        List<AuditLine> audit = AuditLine.Read(AggregatorState.AuditDirectory(_data));
        AuditLine staleLine = Assert.Single(audit, l => l.Type == AuditEvents.Refusal && l.Text("reason") == stale.Status.Detail);
        AuditLine senderLine = Assert.Single(audit, l => l.Type == AuditEvents.Refusal && l.Text("reason") == sender.Status.Detail);
        AuditLine straightLine = Assert.Single(audit, l => l.Type == AuditEvents.Refusal && l.Text("reason") == straightStale.Status.Detail);
        Assert.Equal(("site-a", front.Forwarder.SiloName), (staleLine.Text("site"), staleLine.Text("via")));
        Assert.Equal(("site-a", front.Forwarder.SiloName), (senderLine.Text("site"), senderLine.Text("via")));
        Assert.Equal("site-a", straightLine.Text("site"));
        Assert.False(straightLine.Fields.TryGetProperty("via", out _));

        // The agent's deadline goes with the call: the coordinator's long poll ends when the agent's deadline passes.
        RpcException late = await Assert.ThrowsAsync<RpcException>(() => client.AwaitRoundAsync(
            new AwaitRoundRequest { Header = Header(Stage.Announce, "site-a"), SpeaksProtocolVersion = 4 }, deadline: DateTime.UtcNow.AddSeconds(2)).ResponseAsync.WaitAsync(Timeout));
        Assert.Equal(StatusCode.DeadlineExceeded, late.StatusCode);
    }

    /// <summary>
    /// A call a front forwards takes a place of the site it names at the coordinator (<see cref="BulkCallGate"/>,
    /// <c>MaxCallsPerSite</c>), as well as one at the front: the site's calls in flight at the coordinator are bounded however
    /// many fronts forward them (threat-model/README.md §7).
    /// </summary>
    [Fact]
    public async Task ForwardedLongPoll_CountedAgainstTheNamedSiteAtTheCoordinatorAndAtTheFront_GivenBackWhenItEnds()
    {
        var locator = new FixedLocator(new CoordinatorLeaseRecord(Federation, "S-coordinator", 3, DateTimeOffset.UtcNow.AddMinutes(1), _coordinatorUrl.GetLeftPart(UriPartial.Authority)));
        await using Front front = await Front.StartAsync(_fed, _cluster.Grains, locator, _output);
        using PartyKit siteA = PartyKit.Load(_fed.Provisioned.SiteKitDirectories["site-a"]);
        using GrpcChannel viaFront = Channel(front.Url, siteA);
        BulkCallGate coordinator = _coordinator.Services.GetRequiredService<BulkCallGate>();
        using var cancel = new CancellationTokenSource();

        // site-a's AwaitRound long-poll through the front (no round is running: it waits at the coordinator).
        Task<RoundAnnouncement> poll = new Aggregation.AggregationClient(viaFront).AwaitRoundAsync(
            new AwaitRoundRequest { Header = Header(Stage.Announce, "site-a"), SpeaksProtocolVersion = 4 }, deadline: DateTime.UtcNow + Timeout, cancellationToken: cancel.Token).ResponseAsync;
        using (var timeout = new CancellationTokenSource(Timeout))
        {
            while (coordinator.CallsInFlight("site-a") < 1)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        Assert.Equal(1, coordinator.CallsInFlight("site-a"));
        Assert.Equal(1, front.Gate.CallsInFlight("site-a"));
        Assert.Equal(0, coordinator.CallsInFlight("site-b"));

        await cancel.CancelAsync();
        await Assert.ThrowsAsync<RpcException>(() => poll.WaitAsync(Timeout));
        using (var timeout = new CancellationTokenSource(Timeout))
        {
            while (coordinator.CallsInFlight("site-a") > 0 || front.Gate.CallsInFlight("site-a") > 0)
            {
                await Task.Delay(50, timeout.Token);
            }
        }
    }

    /// <summary>
    /// A front that stops (a standby that took the lease stops its front before the aggregator service binds its address; an
    /// operator stops a slice silo) ends the calls it is forwarding with UNAVAILABLE naming the stop, so the agent retries at
    /// once, and its stop does not wait for them. Before, Kestrel's stop waited for a forwarded long poll (AwaitRound waits up
    /// to the agent's deadline) until the host's shutdown timeout (30 s by default), then cut its connection. The test sets
    /// that timeout to 10 minutes and gives the poll a 20-minute deadline: a stop that waited for the poll would not end
    /// within the test's 60 s bound.
    /// </summary>
    [Fact]
    public async Task StopAsync_ForwardedLongPollInFlight_EndsUnavailableNamingTheStopAndTheFrontStops()
    {
        // Arrange: site-a's AwaitRound long poll forwarded through the front, waiting at the coordinator (no round runs).
        var locator = new FixedLocator(new CoordinatorLeaseRecord(Federation, "S-coordinator", 3, DateTimeOffset.UtcNow.AddMinutes(1), _coordinatorUrl.GetLeftPart(UriPartial.Authority)));
        await using Front front = await Front.StartAsync(_fed, _cluster.Grains, locator, _output);
        front.App.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout = TimeSpan.FromMinutes(10);
        using PartyKit siteA = PartyKit.Load(_fed.Provisioned.SiteKitDirectories["site-a"]);
        using GrpcChannel viaFront = Channel(front.Url, siteA);
        BulkCallGate coordinator = _coordinator.Services.GetRequiredService<BulkCallGate>();
        using var cancel = new CancellationTokenSource();
        Task<RoundAnnouncement> poll = new Aggregation.AggregationClient(viaFront).AwaitRoundAsync(
            new AwaitRoundRequest { Header = Header(Stage.Announce, "site-a"), SpeaksProtocolVersion = 4 }, deadline: DateTime.UtcNow.AddMinutes(20), cancellationToken: cancel.Token).ResponseAsync;
        await WaitUntilAsync(() => coordinator.CallsInFlight("site-a") == 1 && front.Gate.CallsInFlight("site-a") == 1);
        try
        {
            // Act: the front's host stops (its own shutdown timeout, no token).
            Task stop = front.App.StopAsync();
            RpcException ended = await Assert.ThrowsAsync<RpcException>(() => poll.WaitAsync(TimeSpan.FromSeconds(60)));
            await stop.WaitAsync(TimeSpan.FromSeconds(60));

            // Assert: the poll answered UNAVAILABLE (retryable) naming the stopping silo; the call ended at the front and at
            // the coordinator.
            Assert.Equal(StatusCode.Unavailable, ended.StatusCode);
            Assert.Equal($"silo {front.Forwarder.SiloName} is stopping: the call it was forwarding to the coordinator S-coordinator (lease epoch 3, "
                + $"expiring {locator.Record!.ExpiresUtc:O}) was ended before the coordinator answered; retry", ended.Status.Detail);
            Assert.Equal(0, front.Gate.CallsInFlight("site-a"));
            await WaitUntilAsync(() => coordinator.CallsInFlight("site-a") == 0);
        }
        finally
        {
            // Without the fix the poll is still in flight here: cancelled, so the front's stop ends.
            await cancel.CancelAsync();
        }
    }

    /// <summary>
    /// A submission the front forwards is not cut by the front's stop (review of 627a39d): the coordinator may already have
    /// taken it, and an agent answered UNAVAILABLE then sends it again, a duplicate at best and, once the round moved on,
    /// refused as stale. Such a call is left to finish for up to <see cref="CoordinatorForwarder.StopGrace"/>. The
    /// coordinator here is a stand-in that holds site-a's AdvertiseKeys until the test releases it; the test's callback on
    /// the front's ApplicationStopping is registered before the call starts, so it runs after the forwarder's (a token runs
    /// its callbacks last registered first): when it has run, the stop has done to the call whatever it does. Before, the
    /// call had been ended there and the agent heard UNAVAILABLE ("silo … is stopping") instead of the coordinator's Ack.
    /// </summary>
    [Fact]
    public async Task StopAsync_ForwardedSubmissionInFlight_CompletesWithTheCoordinatorsAnswerAndTheFrontStops()
    {
        // Arrange: site-a's AdvertiseKeys forwarded through the front, held at the coordinator.
        await using GatedCoordinator coordinator = await GatedCoordinator.StartAsync(_fed, _output);
        var locator = new FixedLocator(new CoordinatorLeaseRecord(Federation, "S-coordinator", 3, DateTimeOffset.UtcNow.AddMinutes(1), coordinator.Url.GetLeftPart(UriPartial.Authority)));
        await using Front front = await Front.StartAsync(_fed, _cluster.Grains, locator, _output);
        var stopSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using CancellationTokenRegistration seen = front.App.Lifetime.ApplicationStopping.Register(() => stopSeen.TrySetResult());
        using PartyKit siteA = PartyKit.Load(_fed.Provisioned.SiteKitDirectories["site-a"]);
        using GrpcChannel viaFront = Channel(front.Url, siteA);
        Task<Ack> submission = new Aggregation.AggregationClient(viaFront).AdvertiseKeysAsync(
            new AdvertiseKeysRequest { Header = Header(Stage.AdvertiseKeys, "site-a", round: 1) }, deadline: DateTime.UtcNow.AddMinutes(2)).ResponseAsync;
        await coordinator.Arrived.Task.WaitAsync(Timeout);

        // Act: the front's host stops while the coordinator holds the call; then the coordinator answers.
        Task stop = front.App.StopAsync();
        await stopSeen.Task.WaitAsync(Timeout);
        coordinator.Release.TrySetResult();

        // Assert: the agent has the coordinator's own answer, and the front's stop ends.
        Ack ack = await submission.WaitAsync(Timeout);
        Assert.True(ack.Duplicate); // the stand-in's answer (a fresh Ack would say false)
        await stop.WaitAsync(Timeout);
        Assert.Equal(1, coordinator.Answered);
        Assert.Equal(0, front.Gate.CallsInFlight("site-a"));
    }

    /// <summary>
    /// The grace is bounded: a forwarded submission the coordinator still holds <see cref="CoordinatorForwarder.StopGrace"/>
    /// after the front's stop began (the forwarder's clock a <see cref="FakeTimeProvider"/>, advanced by the test) is ended,
    /// UNAVAILABLE saying so, at the coordinator too, and the front's stop ends.
    /// </summary>
    [Fact]
    public async Task StopAsync_ForwardedSubmissionUnansweredAfterTheGrace_EndsUnavailableAndTheFrontStops()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using GatedCoordinator coordinator = await GatedCoordinator.StartAsync(_fed, _output);
        var locator = new FixedLocator(new CoordinatorLeaseRecord(Federation, "S-coordinator", 3, DateTimeOffset.UtcNow.AddMinutes(1), coordinator.Url.GetLeftPart(UriPartial.Authority)));
        await using Front front = await Front.StartAsync(_fed, _cluster.Grains, locator, _output, time: time);
        front.App.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout = TimeSpan.FromMinutes(10);
        var stopSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using CancellationTokenRegistration seen = front.App.Lifetime.ApplicationStopping.Register(() => stopSeen.TrySetResult());
        using PartyKit siteA = PartyKit.Load(_fed.Provisioned.SiteKitDirectories["site-a"]);
        using GrpcChannel viaFront = Channel(front.Url, siteA);
        Task<Ack> submission = new Aggregation.AggregationClient(viaFront).AdvertiseKeysAsync(
            new AdvertiseKeysRequest { Header = Header(Stage.AdvertiseKeys, "site-a", round: 1) }, deadline: DateTime.UtcNow.AddMinutes(20)).ResponseAsync;
        await coordinator.Arrived.Task.WaitAsync(Timeout);

        Task stop = front.App.StopAsync();
        await stopSeen.Task.WaitAsync(Timeout);
        Assert.False(submission.IsCompleted); // within the grace
        time.Advance(CoordinatorForwarder.StopGrace);

        RpcException ended = await Assert.ThrowsAsync<RpcException>(() => submission.WaitAsync(Timeout));
        await stop.WaitAsync(Timeout);
        Assert.Equal(StatusCode.Unavailable, ended.StatusCode);
        Assert.Equal($"silo {front.Forwarder.SiloName} is stopping: the call it was forwarding to the coordinator S-coordinator (lease epoch 3, "
            + $"expiring {locator.Record!.ExpiresUtc:O}) had no answer 10 s after the stop began and was ended; retry", ended.Status.Detail);
        Assert.Equal(0, coordinator.Answered);
    }

    [Fact]
    public async Task Calls_CoordinatorUnreachableOrUnknown_UnavailableNamingHolderEndpointAndCause()
    {
        int dead = SiloProcess.FreePort();
        var record = new CoordinatorLeaseRecord(Federation, "S127.0.0.1:11111:42", 7, DateTimeOffset.UtcNow.AddMinutes(1), $"https://127.0.0.1:{dead}");
        var locator = new FixedLocator(record);
        await using Front front = await Front.StartAsync(_fed, _cluster.Grains, locator, _output);
        using PartyKit siteA = PartyKit.Load(_fed.Provisioned.SiteKitDirectories["site-a"]);
        using GrpcChannel channel = Channel(front.Url, siteA);
        var client = new Aggregation.AggregationClient(channel);

        RpcException unreachable = await Assert.ThrowsAsync<RpcException>(() => client.GetStatusAsync(new StatusRequest { Header = Header(Stage.Unspecified, "site-a") }, deadline: DateTime.UtcNow + Timeout).ResponseAsync);
        locator.Record = null;
        RpcException none = await Assert.ThrowsAsync<RpcException>(() => client.GetStatusAsync(new StatusRequest { Header = Header(Stage.Unspecified, "site-a") }, deadline: DateTime.UtcNow + Timeout).ResponseAsync);

        Assert.Equal(StatusCode.Unavailable, unreachable.StatusCode);
        Assert.StartsWith($"silo {front.Forwarder.SiloName} could not reach the coordinator S127.0.0.1:11111:42 (lease epoch 7, expiring ", unreachable.Status.Detail, StringComparison.Ordinal);
        Assert.Contains($"at https://127.0.0.1:{dead}: ", unreachable.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("refused", unreachable.Status.Detail, StringComparison.OrdinalIgnoreCase);
        Assert.Equal([record], locator.Forgotten);
        Assert.Equal(StatusCode.Unavailable, none.StatusCode);
        Assert.Equal($"no silo has taken the coordinator lease of federation '{Federation}' yet; silo {front.Forwarder.SiloName} has no coordinator to forward to", none.Status.Detail);
    }

    [Fact]
    public async Task Coordinator_SiteCertificateSendingForwardedHeader_PermissionDeniedNothingAccepted()
    {
        using PartyKit siteA = PartyKit.Load(_fed.Provisioned.SiteKitDirectories["site-a"]);
        using PartyKit aggregator = PartyKit.Load(_fed.Provisioned.AggregatorKitDirectory);
        using GrpcChannel asSite = Channel(_coordinatorUrl, siteA);
        using GrpcChannel asSilo = Channel(_coordinatorUrl, aggregator);
        var forged = new Metadata { { ForwardedIdentity.SiteHeader, "site-b" }, { ForwardedIdentity.SiloHeader, "a site pretending" } };

        RpcException refused = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(asSite).AdvertiseKeysAsync(
            new AdvertiseKeysRequest { Header = Header(Stage.AdvertiseKeys, "site-b") }, forged, DateTime.UtcNow + Timeout).ResponseAsync);
        RpcException headerless = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(asSilo).GetStatusAsync(
            new StatusRequest { Header = Header(Stage.Unspecified, "site-a") }, deadline: DateTime.UtcNow + Timeout).ResponseAsync);
        FederationStatus forwarded = await new Aggregation.AggregationClient(asSilo).GetStatusAsync(
            new StatusRequest { Header = Header(Stage.Unspecified, "site-b") }, new Metadata { { ForwardedIdentity.SiteHeader, "site-b" }, { ForwardedIdentity.SiloHeader, "silo-x" } }, DateTime.UtcNow + Timeout);

        Assert.Equal(StatusCode.PermissionDenied, refused.StatusCode);
        Assert.Equal("the 'securefed-forwarded-site' header (naming 'site-b') is accepted only from a silo of the aggregator cluster, which presents the aggregator's own certificate; "
            + "this caller presented the certificate of site 'site-a'", refused.Status.Detail);
        Assert.Equal(StatusCode.PermissionDenied, headerless.StatusCode);
        Assert.Contains("the aggregator's own certificate identifies no site", headerless.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(Federation, forwarded.FederationId);

        // Audited as refusals under the presenting site; nothing was accepted for site-b (or anyone).
        List<AuditLine> audit = AuditLine.Read(AggregatorState.AuditDirectory(_data));
        AuditLine refusal = Assert.Single(audit, l => l.Type == AuditEvents.Refusal && l.Text("site") == "site-a" && l.Text("reason") == refused.Status.Detail);
        Assert.False(refusal.Fields.TryGetProperty("via", out _)); // the silo a site claims is not recorded as a forwarder
        Assert.DoesNotContain(audit, l => l.Type == AuditEvents.KeysReceived);
        Assert.DoesNotContain(audit, l => l.Type != AuditEvents.Refusal && l.Text("site") == "site-b");
    }

    [Fact]
    public async Task Calls_LeaseNamesAStandbysFrontNotTheService_UnavailableAndNeverForwardedOn()
    {
        // A standby that has just taken the lease: the row names it and its address, where its front still answers until it
        // stops and the aggregator service starts there.
        var standbyLocator = new FixedLocator(null);
        await using Front standby = await Front.StartAsync(_fed, _cluster.Grains, standbyLocator, _output, "S-standby");
        var record = new CoordinatorLeaseRecord(Federation, "S-standby", 4, DateTimeOffset.UtcNow.AddMinutes(1), standby.Url.GetLeftPart(UriPartial.Authority));
        standbyLocator.Record = record;
        var locator = new FixedLocator(record);
        await using Front front = await Front.StartAsync(_fed, _cluster.Grains, locator, _output);
        using PartyKit siteA = PartyKit.Load(_fed.Provisioned.SiteKitDirectories["site-a"]);
        using GrpcChannel toStandby = Channel(standby.Url, siteA);
        using GrpcChannel toFront = Channel(front.Url, siteA);

        // An agent at the standby: it does not forward to its own address. An agent at another front: forwarded once, to the
        // standby's front, which does not forward it on.
        RpcException own = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(toStandby).GetStatusAsync(
            new StatusRequest { Header = Header(Stage.Unspecified, "site-a") }, deadline: DateTime.UtcNow + Timeout).ResponseAsync);
        RpcException chained = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(toFront).GetStatusAsync(
            new StatusRequest { Header = Header(Stage.Unspecified, "site-a") }, deadline: DateTime.UtcNow + Timeout).ResponseAsync);

        // Both retryable (the agent's next call finds the service), with the reason.
        Assert.Equal(StatusCode.Unavailable, own.StatusCode);
        Assert.Equal("silo S-standby has just taken the coordinator lease (epoch 4) and is starting the aggregator service at this address; retry", own.Status.Detail);
        Assert.Equal(0, standby.Forwarder.CallsForwarded);
        Assert.Equal(StatusCode.Unavailable, chained.StatusCode);
        Assert.StartsWith("silo S-front could not reach the coordinator S-standby (lease epoch 4, ", chained.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("silo S-front forwarded a call to silo S-standby, whose front does not serve the coordinator's calls", chained.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(1, front.Forwarder.CallsForwarded);
        Assert.Equal([record], standbyLocator.Forgotten);
    }

    /// <summary>
    /// Hostile-site review (session 48): a front forwards every site's calls to the coordinator over one HTTP/2 connection,
    /// whose 1 MiB connection-level window Kestrel gives back only as the coordinator reads request bodies. Two whole
    /// uploads of site-x that wait at the coordinator (one for a slot, one for site-x's turn: both allowed) are not read,
    /// so their pushed chunks took the whole window: every other site's forwarded call stalled (site-c's status timed
    /// out) and site-a's upload, which held a slot and sent its words at once, was refused as too slow with 0 words
    /// delivered. Each site now has its own connection from the front, as it has to a single-process aggregator.
    /// </summary>
    [Fact]
    public async Task UploadMaskedInput_OneSitesWaitingUploadsThroughAFront_OtherSitesForwardedCallsGoOn()
    {
        string[] sites = ["site-a", "site-b", "site-c", "site-x"];
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed-window"), Federation, sites);
        string data = Path.Combine(_dir, "aggregator-window");
        Dictionary<string, string?> settings = FrontFederation.Flatten(fed.AggregatorSettings(data, SiloProcess.FreePort(), rounds: 1));
        settings["SecureFed:Federation"] = Federation;
        settings["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        settings["SecureFed:MinSites"] = "4";
        settings["SecureFed:TrainingTimeoutSeconds"] = "120";
        settings["SecureFed:MaxConcurrentUploads"] = "2";
        settings["SecureFed:UploadGraceSeconds"] = "8";
        settings["SecureFed:MinUploadWordsPerSecond"] = "1000";
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        WebApplication coordinator = AggregatorHost.Build(configuration, (Func<float[]>?)null, logging => logging.SetMinimumLevel(LogLevel.Warning));
        await coordinator.StartAsync().WaitAsync(Timeout);
        try
        {
            Uri coordinatorUrl = AggregatorHost.BoundAddress(coordinator);
            UploadLimiter limiter = coordinator.Services.GetRequiredService<UploadLimiter>();
            var locator = new FixedLocator(new CoordinatorLeaseRecord(Federation, "S-coordinator", 3, DateTimeOffset.UtcNow.AddMinutes(5), coordinatorUrl.GetLeftPart(UriPartial.Authority)));
            await using Front front = await Front.StartAsync(fed, _cluster.Grains, locator, _output);
            var kits = sites.ToDictionary(s => s, s => PartyKit.Load(fed.Provisioned.SiteKitDirectories[s]));
            var channels = sites.ToDictionary(s => s, s => Channel(front.Url, kits[s]));
            try
            {
                Aggregation.AggregationClient Client(string site) => new(channels[site]);
                static CallOptions Within(double seconds) => new(deadline: DateTime.UtcNow.AddSeconds(seconds));

                // Every site waits for the round through the front.
                RoundAnnouncement[] announced = await Task.WhenAll(sites.Select(s => Client(s).AwaitRoundAsync(
                    new AwaitRoundRequest { Header = new Header { FederationId = Federation, Stage = Stage.Announce, Sender = s } }, Within(60)).ResponseAsync)).WaitAsync(TimeSpan.FromSeconds(70));
                RoundAnnouncement a = announced[0];
                int m = (int)a.VectorLength;
                Header H(string site, Stage stage) => new() { FederationId = Federation, Round = a.Header.Round, SessionId = a.Header.SessionId, Stage = stage, Sender = site };
                uint[] vector = new uint[m];
                string sha = Convert.ToHexStringLower(SecureFed.Protocol.WireEncoding.VectorDigest(vector));
                MaskedInputChunk First(string site) => new() { Header = H(site, Stage.MaskedInput), Offset = 0, TotalWords = (uint)m, Sha256 = sha };

                // site-a and site-b have begun their uploads: each holds one of the two slots.
                using AsyncClientStreamingCall<MaskedInputChunk, Ack> uploadA = Client("site-a").UploadMaskedInput(Within(60));
                await uploadA.RequestStream.WriteAsync(First("site-a"));
                using AsyncClientStreamingCall<MaskedInputChunk, Ack> uploadB = Client("site-b").UploadMaskedInput(Within(60));
                await uploadB.RequestStream.WriteAsync(First("site-b"));
                await WaitUntilAsync(() => limiter.InUse == 2);

                // site-x: two uploads that wait at the coordinator, each pushing 256 KiB chunks.
                using var stopPushing = new CancellationTokenSource();
                var hostile = new List<AsyncClientStreamingCall<MaskedInputChunk, Ack>>();
                for (int i = 0; i < 2; i++)
                {
                    AsyncClientStreamingCall<MaskedInputChunk, Ack> call = Client("site-x").UploadMaskedInput(Within(60));
                    hostile.Add(call);
                    _ = PushAsync(call, First("site-x"), stopPushing.Token);
                }

                await WaitUntilAsync(() => limiter.UploadsOf("site-x") == 2);
                await Task.Delay(1500);

                // site-a sends the rest of its vector at once; site-c asks for the status.
                var rest = new MaskedInputChunk { Offset = 0 };
                rest.Words.AddRange(vector);
                _ = uploadA.RequestStream.WriteAsync(rest).ContinueWith(_ => uploadA.RequestStream.CompleteAsync()).Unwrap();
                var clock = System.Diagnostics.Stopwatch.StartNew();
                StatusCode status = StatusCode.OK;
                try
                {
                    await Client("site-c").GetStatusAsync(new StatusRequest { Header = H("site-c", Stage.Unspecified) }, Within(3)).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(10));
                }
                catch (RpcException ex)
                {
                    status = ex.StatusCode;
                }

                double seconds = clock.Elapsed.TotalSeconds;
                RpcException endA = await Assert.ThrowsAsync<RpcException>(() => uploadA.ResponseAsync.WaitAsync(TimeSpan.FromSeconds(30)));
                string outcome = $"site-c's status through the front: {status} after {seconds:F1} s; site-a's upload: {endA.StatusCode}: {endA.Status.Detail}";
                await stopPushing.CancelAsync();
                foreach (AsyncClientStreamingCall<MaskedInputChunk, Ack> call in hostile)
                {
                    call.Dispose();
                }

                // site-c's status at once, and site-a's words read (its upload then refused only because the round is still at
                // AdvertiseKeys), whatever site-x's uploads do.
                Assert.True(status == StatusCode.OK, outcome);
                Assert.True(endA.StatusCode == StatusCode.FailedPrecondition && endA.Status.Detail.Contains("out of order", StringComparison.Ordinal), outcome);
            }
            finally
            {
                foreach (GrpcChannel channel in channels.Values)
                {
                    channel.Dispose();
                }

                foreach (PartyKit kit in kits.Values)
                {
                    kit.Dispose();
                }
            }
        }
        finally
        {
            await HostStop.StopAsync(coordinator, _output);
            await coordinator.DisposeAsync();
        }
    }

    /// <summary>A first chunk, then 256 KiB chunks until cancelled or the call ends.</summary>
    private static async Task PushAsync(AsyncClientStreamingCall<MaskedInputChunk, Ack> call, MaskedInputChunk first, CancellationToken cancellationToken)
    {
        try
        {
            await call.RequestStream.WriteAsync(first, cancellationToken);
            var chunk = new MaskedInputChunk();
            chunk.Words.AddRange(new uint[AggregationService.MaxChunkWords]);
            for (int k = 0; k < 8 && !cancellationToken.IsCancellationRequested; k++)
            {
                chunk.Offset = (uint)(k * AggregationService.MaxChunkWords);
                await call.RequestStream.WriteAsync(chunk, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is RpcException or OperationCanceledException or InvalidOperationException)
        {
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(20, timeout.Token);
        }
    }

    private static Header Header(Stage stage, string sender, ulong round = 0) => new() { FederationId = Federation, Round = round, SessionId = "s", Stage = stage, Sender = sender };

    private static async Task<List<ModelChunk>> DownloadAsync(Aggregation.AggregationClient client)
    {
        using AsyncServerStreamingCall<ModelChunk> call = client.DownloadModel(new ModelRequest { Header = Header(Stage.Model, "site-a") }, deadline: DateTime.UtcNow + Timeout);
        var chunks = new List<ModelChunk>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            chunks.Add(call.ResponseStream.Current.Clone());
        }

        return chunks;
    }

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

    private sealed class FixedLocator(CoordinatorLeaseRecord? record) : ICoordinatorLocator
    {
        public CoordinatorLeaseRecord? Record { get; set; } = record;

        public List<CoordinatorLeaseRecord> Forgotten { get; } = [];

        public Task<CoordinatorLeaseRecord?> LocateAsync(CancellationToken cancellationToken) => Task.FromResult(Record);

        public void Forget(CoordinatorLeaseRecord stale)
        {
            lock (Forgotten)
            {
                Forgotten.Add(stale);
            }
        }
    }

    /// <summary>
    /// A stand-in for the coordinator's agent endpoint (Kestrel on 127.0.0.1, port 0, with the aggregator's certificate and
    /// mutual TLS, as the coordinator's): AdvertiseKeys waits until <see cref="Release"/> is completed, then answers a
    /// duplicate Ack.
    /// </summary>
    private sealed class GatedCoordinator : IAsyncDisposable
    {
        private readonly PartyKit _kit;
        private readonly WebApplication _app;
        private readonly ITestOutputHelper _output;
        private int _answered;

        private GatedCoordinator(PartyKit kit, ITestOutputHelper output)
        {
            _kit = kit;
            _output = output;
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
            builder.WebHost.ConfigureKestrel(kestrel => AgentListener.Listen(kestrel, new Uri("https://127.0.0.1:0"), kit, new ConnectionGate(8)));
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(this);
            _app = builder.Build();
            _app.MapGrpcService<GatedService>();
        }

        /// <summary>Completed when the held call has arrived.</summary>
        public TaskCompletionSource Arrived { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completed by the test to let the held call answer.</summary>
        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Calls answered.</summary>
        public int Answered => Volatile.Read(ref _answered);

        public Uri Url => SliceFrontHost.BoundAddress(_app);

        public static async Task<GatedCoordinator> StartAsync(FrontFederation fed, ITestOutputHelper output)
        {
            var coordinator = new GatedCoordinator(PartyKit.Load(fed.Provisioned.AggregatorKitDirectory), output);
            await coordinator._app.StartAsync().WaitAsync(Timeout);
            return coordinator;
        }

        public async ValueTask DisposeAsync()
        {
            Release.TrySetResult();
            await HostStop.StopAsync(_app, _output);
            await _app.DisposeAsync();
            _kit.Dispose();
        }

        private sealed class GatedService(GatedCoordinator gate) : Aggregation.AggregationBase
        {
            public override async Task<Ack> AdvertiseKeys(AdvertiseKeysRequest request, ServerCallContext context)
            {
                gate.Arrived.TrySetResult();
                await gate.Release.Task.WaitAsync(context.CancellationToken);
                Interlocked.Increment(ref gate._answered);
                return new Ack { Duplicate = true };
            }
        }
    }

    /// <summary>A silo front on Kestrel (127.0.0.1, port 0) with the aggregator's kit and a forwarder.</summary>
    private sealed class Front : IAsyncDisposable
    {
        private readonly PartyKit _kit;
        private readonly SliceFront _front;
        private readonly WebApplication _app;
        private readonly ITestOutputHelper _output;

        private Front(PartyKit kit, SliceFront front, WebApplication app, ITestOutputHelper output)
        {
            _kit = kit;
            _front = front;
            _app = app;
            _output = output;
        }

        public Uri Url => SliceFrontHost.BoundAddress(_app);

        public CoordinatorForwarder Forwarder => _front.Coordinator!;

        public BulkCallGate Gate => _app.Services.GetRequiredService<BulkCallGate>();

        public WebApplication App => _app;

        public static async Task<Front> StartAsync(FrontFederation fed, IGrainFactory grains, ICoordinatorLocator locator, ITestOutputHelper output, string silo = "S-front", TimeProvider? time = null)
        {
            PartyKit kit = PartyKit.Load(fed.Provisioned.AggregatorKitDirectory);
            var front = new SliceFront(Federation, kit, grains, silo, maxConcurrentUploads: 2)
            {
                Coordinator = new CoordinatorForwarder(Federation, kit, silo, locator, NullLogger.Instance, time),
            };
            WebApplication app = SliceFrontHost.Build(new Uri("https://127.0.0.1:0"), front, logging => logging.SetMinimumLevel(LogLevel.Warning));
            await app.StartAsync().WaitAsync(Timeout);
            return new Front(kit, front, app, output);
        }

        public async ValueTask DisposeAsync()
        {
            await HostStop.StopAsync(_app, _output);
            await _app.DisposeAsync();
            _front.Dispose();
            _kit.Dispose();
        }
    }
}
