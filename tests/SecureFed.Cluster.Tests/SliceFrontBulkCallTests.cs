using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Cluster.Front;
using SecureFed.Federation;
using SecureFed.Testing;
using SecureFed.Wire.V1;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A slice silo's front bounds one site's ShareKeys/Unmask calls in flight as the coordinator does (<see cref="BulkCallGate"/>,
/// docs/cluster.md §6): a site's stalled large calls beyond <see cref="SliceFront.MaxBulkCallsPerSite"/> are refused with
/// RESOURCE_EXHAUSTED before their bodies are read (and before anything is forwarded); another site's calls are not. Its
/// agent endpoint bounds a site's open connections likewise (<see cref="ConnectionGate"/>).
/// </summary>
public sealed class SliceFrontBulkCallTests : IClassFixture<ThreeSiloCluster>, IDisposable
{
    private const string Federation = "slice-bulk";
    /// <summary>Aborts site-x's stalled calls, waits until they gave their places back, and stops the front.</summary>
    private static async Task ReleaseAndStopAsync(CancellationTokenSource release, List<Task<HttpResponseMessage>> calls, BulkCallGate gate, WebApplication app)
    {
        await release.CancelAsync();
        await Task.WhenAll(calls.Select(c => c.ContinueWith(_ => { }, TaskScheduler.Default))).WaitAsync(HangBound);
        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.InFlight("site-x") > 0)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        await app.StopAsync().WaitAsync(HangBound);
    }

    private static readonly TimeSpan HangBound = TimeSpan.FromSeconds(90);
    private readonly ThreeSiloCluster _cluster;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-slice-bulk-").FullName;

    public SliceFrontBulkCallTests(ThreeSiloCluster cluster)
    {
        _cluster = cluster;
    }

    [Fact]
    public async Task ShareKeys_SiteStallsMoreLargeCallsThanTheLimit_RestRefusedResourceExhaustedOtherSiteNot()
    {
        ProvisionResult federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation"), Federation, ["site-a", "site-x"], "127.0.0.1"));
        using PartyKit aggregatorKit = PartyKit.Load(federation.AggregatorKitDirectory);
        using PartyKit kitX = PartyKit.Load(federation.SiteKitDirectories["site-x"]);
        using PartyKit kitA = PartyKit.Load(federation.SiteKitDirectories["site-a"]);
        using var front = new SliceFront(Federation, aggregatorKit, _cluster.Grains, "silo-under-test", maxConcurrentUploads: 2);
        await using WebApplication app = SliceFrontHost.Build(new Uri("https://127.0.0.1:0"), front);
        await app.StartAsync().WaitAsync(HangBound);
        Uri address = SliceFrontHost.BoundAddress(app);
        BulkCallGate gate = app.Services.GetRequiredService<BulkCallGate>();
        Assert.Equal(BulkCallGate.DefaultLimitPerSite, gate.LimitPerSite);

        // site-x: 5 raw HTTP/2 ShareKeys calls declaring 3.5 MB and sending 64 KiB, then stalling.
        using var release = new CancellationTokenSource();
        using var raw = new HttpClient(Handler(kitX)) { Timeout = Timeout.InfiniteTimeSpan };
        var calls = new List<Task<HttpResponseMessage>>();
        for (int i = 0; i < 5; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, "/securefed.v1.Aggregation/ShareKeys"))
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new StalledGrpcContent(3_500_000, 64 * 1024),
            };
            request.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
            calls.Add(raw.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, release.Token));
        }

        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (calls.Count(c => c.IsCompleted) < 3 || gate.InFlight("site-x") < 2)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        foreach (Task<HttpResponseMessage> done in calls.Where(c => c.IsCompleted))
        {
            using HttpResponseMessage response = await done;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("8", Assert.Single(response.Headers.GetValues("grpc-status")));
            Assert.StartsWith("ShareKeys: site 'site-x' already has 2 ShareKeys/Unmask calls in flight (the limit per site); refused",
                Uri.UnescapeDataString(Assert.Single(response.Headers.GetValues("grpc-message"))), StringComparison.Ordinal);
        }

        await Task.Delay(TimeSpan.FromMilliseconds(500));
        Assert.Equal(2, calls.Count(c => !c.IsCompleted));

        // Through Grpc.Net.Client: site-x's Unmask is refused the same way; site-a's reaches the front's service (which,
        // with no coordinator to forward to, answers Unimplemented).
        using (GrpcChannel channelX = Channel(address, kitX))
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(channelX)
                .UnmaskAsync(new UnmaskResponseMessage(), deadline: DateTime.UtcNow.AddSeconds(60)).ResponseAsync.WaitAsync(HangBound));
            Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
            Assert.StartsWith("Unmask: site 'site-x' already has 2 ShareKeys/Unmask calls in flight", ex.Status.Detail, StringComparison.Ordinal);
        }

        using (GrpcChannel channelA = Channel(address, kitA))
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(channelA)
                .ShareKeysAsync(new ShareKeysRequest(), deadline: DateTime.UtcNow.AddSeconds(60)).ResponseAsync.WaitAsync(HangBound));
            Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
        }

        // Aborted calls give their places back.
        await ReleaseAndStopAsync(release, calls, gate, app);
    }

    /// <summary>
    /// Every method, not only ShareKeys/Unmask (threat-model/README.md §7): a site's stalled calls of any method beyond
    /// <see cref="SliceFront.MaxCallsPerSite"/> (16) are refused by the front with RESOURCE_EXHAUSTED before their bodies are
    /// read (and before anything is forwarded), logged within the site's share of the front's refusal lines; another site's
    /// calls are not; aborted calls give their places back.
    /// </summary>
    [Fact]
    public async Task AnyMethod_SiteStallsMoreCallsThanTheCallLimit_RestRefusedResourceExhaustedOtherSiteNot()
    {
        ProvisionResult federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation"), Federation, ["site-a", "site-x"], "127.0.0.1"));
        using PartyKit aggregatorKit = PartyKit.Load(federation.AggregatorKitDirectory);
        using PartyKit kitX = PartyKit.Load(federation.SiteKitDirectories["site-x"]);
        using PartyKit kitA = PartyKit.Load(federation.SiteKitDirectories["site-a"]);
        var log = new CapturingLogger();
        using var front = new SliceFront(Federation, aggregatorKit, _cluster.Grains, "silo-under-test", maxConcurrentUploads: 2);
        await using WebApplication app = SliceFrontHost.Build(new Uri("https://127.0.0.1:0"), front, logging => logging.AddProvider(log));
        await app.StartAsync().WaitAsync(HangBound);
        Uri address = SliceFrontHost.BoundAddress(app);
        BulkCallGate gate = app.Services.GetRequiredService<BulkCallGate>();
        int limit = gate.CallLimitPerSite;
        Assert.Equal(BulkCallGate.DefaultCallLimitPerSite, limit);

        // site-x: `limit` raw HTTP/2 calls declaring ~4 MiB and sending 64 KiB, then stalling; then 40 more.
        string[] methods = ["GetStatus", "UploadMaskedInput", "AwaitRound", "AdvertiseKeys", "DownloadModel"];
        using var release = new CancellationTokenSource();
        using var raw = new HttpClient(Handler(kitX)) { Timeout = Timeout.InfiniteTimeSpan };
        var calls = new List<Task<HttpResponseMessage>>();
        Task<HttpResponseMessage> Stalled(string method)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, $"/securefed.v1.Aggregation/{method}"))
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new StalledGrpcContent(4 * 1024 * 1024 - 16, 64 * 1024),
            };
            request.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
            return raw.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, release.Token);
        }

        for (int i = 0; i < limit; i++)
        {
            calls.Add(Stalled(methods[i % methods.Length]));
        }

        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.CallsInFlight("site-x") < limit)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        HttpResponseMessage[] answers = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => Stalled(methods[i % methods.Length]))).WaitAsync(HangBound);
        for (int i = 0; i < answers.Length; i++)
        {
            using HttpResponseMessage response = answers[i];
            Assert.Equal("8", Assert.Single(response.Headers.GetValues("grpc-status")));
            Assert.StartsWith($"{methods[i % methods.Length]}: site 'site-x' already has 16 calls in flight at this aggregator process (the limit per site, SecureFed:MaxCallsPerSite); refused",
                Uri.UnescapeDataString(Assert.Single(response.Headers.GetValues("grpc-message"))), StringComparison.Ordinal);
        }

        Assert.Equal(limit, gate.CallsInFlight("site-x"));
        Assert.All(calls, c => Assert.False(c.IsCompleted));
        Assert.InRange(log.Lines.Count(l => l.Message.Contains("(SecureFed:MaxCallsPerSite)", StringComparison.Ordinal)), 32, 33); // 32 at once, one more every 10 s

        // site-a's call reaches the front's service (no coordinator: Unimplemented).
        using (GrpcChannel channelA = Channel(address, kitA))
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(channelA)
                .GetStatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(60)).ResponseAsync.WaitAsync(HangBound));
            Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
        }

        await release.CancelAsync();
        await Task.WhenAll(calls.Select(c => c.ContinueWith(_ => { }, TaskScheduler.Default))).WaitAsync(HangBound);
        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.CallsInFlight("site-x") > 0)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        await app.StopAsync().WaitAsync(HangBound);
    }

    /// <summary>
    /// Routing matches a method's path case-insensitively and tolerates a trailing slash: a site's differently spelled
    /// ShareKeys/Unmask call (a hand-made <see cref="Method{TRequest, TResponse}"/>) reaches the front's service, so the
    /// front's gate counts it against the same limit.
    /// </summary>
    [Theory]
    [InlineData("securefed.v1.aggregation", "sharekeys")]
    [InlineData("securefed.v1.Aggregation", "ShareKeys/")]
    [InlineData("SECUREFED.V1.AGGREGATION", "UNMASK")]
    public async Task BulkCall_PathSpelledDifferentlyButRoutedToTheMethod_CountedAgainstTheSameLimit(string service, string name)
    {
        ProvisionResult federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation"), Federation, ["site-a", "site-x"], "127.0.0.1"));
        using PartyKit aggregatorKit = PartyKit.Load(federation.AggregatorKitDirectory);
        using PartyKit kitX = PartyKit.Load(federation.SiteKitDirectories["site-x"]);
        using PartyKit kitA = PartyKit.Load(federation.SiteKitDirectories["site-a"]);
        using var front = new SliceFront(Federation, aggregatorKit, _cluster.Grains, "silo-under-test", maxConcurrentUploads: 2);
        await using WebApplication app = SliceFrontHost.Build(new Uri("https://127.0.0.1:0"), front);
        await app.StartAsync().WaitAsync(HangBound);
        Uri address = SliceFrontHost.BoundAddress(app);
        BulkCallGate gate = app.Services.GetRequiredService<BulkCallGate>();
        string canonical = name.StartsWith("unmask", StringComparison.OrdinalIgnoreCase) ? "Unmask" : "ShareKeys";

        // Routing takes the path to the method: site-a's call reaches the front's service (no coordinator: Unimplemented
        // with the service's own message).
        using (GrpcChannel channelA = Channel(address, kitA))
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => BulkCall(channelA, service, name).WaitAsync(HangBound));
            Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
            Assert.EndsWith("this silo serves slice uploads only", ex.Status.Detail, StringComparison.Ordinal);
        }

        // site-x fills its two places with stalled calls on the canonical path.
        using var release = new CancellationTokenSource();
        using var raw = new HttpClient(Handler(kitX)) { Timeout = Timeout.InfiniteTimeSpan };
        var calls = new List<Task<HttpResponseMessage>>();
        for (int i = 0; i < 2; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, "/securefed.v1.Aggregation/ShareKeys"))
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new StalledGrpcContent(3_500_000, 64 * 1024),
            };
            request.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
            calls.Add(raw.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, release.Token));
        }

        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.InFlight("site-x") < 2)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        // site-x's differently spelled call is refused by the gate.
        using (GrpcChannel channelX = Channel(address, kitX))
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => BulkCall(channelX, service, name).WaitAsync(HangBound));
            Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
            Assert.StartsWith($"{canonical}: site 'site-x' already has 2 ShareKeys/Unmask calls in flight (the limit per site); refused", ex.Status.Detail, StringComparison.Ordinal);
        }

        Assert.Equal(2, gate.InFlight("site-x"));
        await ReleaseAndStopAsync(release, calls, gate, app);
    }

    /// <summary>
    /// The front's agent endpoint bounds a site's open connections as the coordinator's does (<see cref="ConnectionGate"/>,
    /// <see cref="SliceFront.MaxConnectionsPerSite"/>): one over the limit is closed after its TLS handshake (the client sees
    /// UNAVAILABLE); another site's is not; a closed connection frees its place.
    /// </summary>
    [Fact]
    public async Task AgentEndpoint_SiteOpensMoreConnectionsThanTheLimit_ExtraClosedOtherSiteNotFreedOnClose()
    {
        ProvisionResult federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation"), Federation, ["site-a", "site-x"], "127.0.0.1"));
        using PartyKit aggregatorKit = PartyKit.Load(federation.AggregatorKitDirectory);
        using PartyKit kitX = PartyKit.Load(federation.SiteKitDirectories["site-x"]);
        using PartyKit kitA = PartyKit.Load(federation.SiteKitDirectories["site-a"]);
        using var front = new SliceFront(Federation, aggregatorKit, _cluster.Grains, "silo-under-test", maxConcurrentUploads: 2) { MaxConnectionsPerSite = 2 };
        await using WebApplication app = SliceFrontHost.Build(new Uri("https://127.0.0.1:0"), front);
        await app.StartAsync().WaitAsync(HangBound);
        Uri address = SliceFrontHost.BoundAddress(app);
        ConnectionGate gate = app.Services.GetRequiredService<ConnectionGate>();
        Assert.Equal(2, gate.LimitPerSite);

        // Each connection opened by a call that reaches the front's service (no coordinator: Unimplemented).
        static async Task<StatusCode> CallAsync(GrpcChannel channel)
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(channel)
                .ShareKeysAsync(new ShareKeysRequest(), deadline: DateTime.UtcNow.AddSeconds(30)).ResponseAsync.WaitAsync(HangBound));
            return ex.StatusCode;
        }

        using GrpcChannel first = Channel(address, kitX);
        using GrpcChannel second = Channel(address, kitX);
        using GrpcChannel third = Channel(address, kitX);
        Assert.Equal(StatusCode.Unimplemented, await CallAsync(first));
        Assert.Equal(StatusCode.Unimplemented, await CallAsync(second));
        Assert.Equal(StatusCode.Unavailable, await CallAsync(third));
        Assert.Equal(2, gate.Open("site-x"));
        using (GrpcChannel channelA = Channel(address, kitA))
        {
            Assert.Equal(StatusCode.Unimplemented, await CallAsync(channelA));
        }

        second.Dispose(); // closes its connection now (disposing again at the end is a no-op)
        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.Open("site-x") > 1)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        using GrpcChannel fourth = Channel(address, kitX);
        Assert.Equal(StatusCode.Unimplemented, await CallAsync(fourth));
        Assert.Equal(2, gate.Open("site-x"));
        await app.StopAsync().WaitAsync(HangBound);
    }

    /// <summary>
    /// A site refused without pause gets its share of the front's refusal lines (<see cref="FrontRefusalLog"/>: 32 at once),
    /// the rest counted and logged as one summary once its bucket has a line again; another site's refusal is logged all the
    /// same. Before the bound every refusal was one warning line (1,000 lines here).
    /// </summary>
    [Fact]
    public async Task UploadMaskedInput_SiteRefusedAThousandTimes_FrontLogsItsShareThenOneSummaryOtherSiteLogged()
    {
        ProvisionResult federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation"), Federation, ["site-a", "site-x"], "127.0.0.1"));
        using PartyKit aggregatorKit = PartyKit.Load(federation.AggregatorKitDirectory);
        using PartyKit kitX = PartyKit.Load(federation.SiteKitDirectories["site-x"]);
        using PartyKit kitA = PartyKit.Load(federation.SiteKitDirectories["site-a"]);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero));
        var log = new CapturingLogger();
        // Calls in flight are not what this test is about: 20 at once (and those the front is still ending) may exceed the default.
        using var front = new SliceFront(Federation, aggregatorKit, _cluster.Grains, "silo-under-test", maxConcurrentUploads: 2) { Time = time, MaxCallsPerSite = 1_024 };
        await using WebApplication app = SliceFrontHost.Build(new Uri("https://127.0.0.1:0"), front, logging => logging.AddProvider(log));
        await app.StartAsync().WaitAsync(HangBound);
        Uri address = SliceFrontHost.BoundAddress(app);

        // Each upload names another federation: refused by the front before any grain is called.
        static async Task RefusedAsync(Aggregation.AggregationClient client, string site)
        {
            using AsyncClientStreamingCall<MaskedInputChunk, Ack> call = client.UploadMaskedInput(deadline: DateTime.UtcNow.AddSeconds(60));
            await call.RequestStream.WriteAsync(new MaskedInputChunk
            {
                Header = new Header { FederationId = "another-federation", Round = 1, SessionId = "s", Stage = Stage.MaskedInput, Sender = site },
                Slice = 0,
            });
            await call.RequestStream.CompleteAsync();
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync.WaitAsync(HangBound));
            Assert.Equal(StatusCode.InvalidArgument, ex.StatusCode);
        }

        using GrpcChannel channelX = Channel(address, kitX);
        var clientX = new Aggregation.AggregationClient(channelX);
        for (int batch = 0; batch < 50; batch++)
        {
            await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => RefusedAsync(clientX, "site-x")));
        }

        using (GrpcChannel channelA = Channel(address, kitA))
        {
            await RefusedAsync(new Aggregation.AggregationClient(channelA), "site-a");
        }

        List<string> Lines(string containing) => [.. log.Lines.Select(l => l.Message).Where(m => m.Contains(containing, StringComparison.Ordinal))];
        Assert.Equal(32, Lines("Slice upload from site-x refused (InvalidArgument): the message is for federation 'another-federation'").Count);
        Assert.Single(Lines("Slice upload from site-a refused (InvalidArgument)"));
        Assert.Empty(Lines("refusals of site-x"));

        time.Advance(TimeSpan.FromSeconds(10));
        Assert.StartsWith("968 refusals of site-x were not logged one by one (too many; refused all the same) between ", Assert.Single(Lines("refusals of site-x")), StringComparison.Ordinal);
        Assert.Equal(32, Lines("Slice upload from site-x").Count);
        await app.StopAsync().WaitAsync(HangBound);
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
    }

    /// <summary>A ShareKeys-shaped unary call on the method <paramref name="service"/>/<paramref name="name"/> as spelled.</summary>
    private static Task<Ack> BulkCall(GrpcChannel channel, string service, string name)
    {
        var method = new Method<ShareKeysRequest, Ack>(MethodType.Unary, service, name,
            Marshallers.Create(m => m.ToByteArray(), ShareKeysRequest.Parser.ParseFrom), Marshallers.Create(m => m.ToByteArray(), Ack.Parser.ParseFrom));
        return channel.CreateCallInvoker().AsyncUnaryCall(method, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(60)), new ShareKeysRequest()).ResponseAsync;
    }

    private static SocketsHttpHandler Handler(PartyKit kit) => new()
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            ClientCertificates = [kit.TlsCertificate],
            RemoteCertificateValidationCallback = PeerTrust.AggregatorValidationCallback(kit.Manifest),
        },
        ConnectTimeout = TimeSpan.FromSeconds(5),
    };

    private static GrpcChannel Channel(Uri address, PartyKit kit) => GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        HttpHandler = Handler(kit),
        DisposeHttpClient = true,
    });

    /// <summary>A gRPC request body declaring a message of <c>declared</c> bytes that sends <c>sent</c> of them, then stalls until cancelled.</summary>
    private sealed class StalledGrpcContent : HttpContent
    {
        private readonly int _declared;
        private readonly int _sent;

        public StalledGrpcContent(int declared, int sent)
        {
            _declared = declared;
            _sent = sent;
            Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            byte[] prefix = new byte[5];
            BinaryPrimitives.WriteUInt32BigEndian(prefix.AsSpan(1), (uint)_declared);
            await stream.WriteAsync(prefix, cancellationToken);
            await stream.WriteAsync(new byte[_sent], cancellationToken);
            await stream.FlushAsync(cancellationToken);
            await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
