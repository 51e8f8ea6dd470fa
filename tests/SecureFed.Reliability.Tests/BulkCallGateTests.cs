using System.Security.Cryptography.X509Certificates;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using SecureFed.Aggregator;
using SecureFed.Federation;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The per-site bound on ShareKeys/Unmask calls in flight (<see cref="BulkCallGate"/>), in process: its counting, and
/// the middleware on a pipeline of its own (no Kestrel): who is counted, what a refusal looks like, that a refused
/// request's body is never read, and that a place is given back however the call ends.
/// </summary>
public sealed class BulkCallGateTests : IDisposable
{
    private const string ShareKeysPath = "/securefed.v1.Aggregation/ShareKeys";
    private const string UnmaskPath = "/securefed.v1.Aggregation/Unmask";
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-bulkgate-").FullName;

    [Fact]
    public void Methods_FromTheServiceDescriptor_AreShareKeysAndUnmask()
    {
        Assert.Equal(new Dictionary<string, string> { [ShareKeysPath] = "ShareKeys", [UnmaskPath] = "Unmask" }, BulkCallGate.Methods);
    }

    /// <summary>
    /// Session 56: gRPC's refusal of a request over the 4 MiB cap is read from the call's status wherever gRPC put it
    /// (the response's headers for a trailers-only answer, the trailers otherwise), percent-encoded or not; any other
    /// status or detail is not taken for it.
    /// </summary>
    [Fact]
    public void RefusedOverMessageCap_GrpcsSizeRefusalInHeadersOrTrailers_OtherStatusesNot()
    {
        Assert.True(BulkCallGate.RefusedOverMessageCap(Answered(headers: ("8", BulkCallGate.GrpcOverMessageCapDetail))));
        Assert.True(BulkCallGate.RefusedOverMessageCap(Answered(trailers: ("8", BulkCallGate.GrpcOverMessageCapDetail))));
        Assert.True(BulkCallGate.RefusedOverMessageCap(Answered(trailers: ("8", BulkCallGate.GrpcOverMessageCapDetail.Replace(" ", "%20", StringComparison.Ordinal)))));
        Assert.False(BulkCallGate.RefusedOverMessageCap(Answered()));
        Assert.False(BulkCallGate.RefusedOverMessageCap(Answered(headers: ("0", null))));
        Assert.False(BulkCallGate.RefusedOverMessageCap(Answered(headers: ("8", "site 'x' already has 16 calls in flight"))));
        Assert.False(BulkCallGate.RefusedOverMessageCap(Answered(trailers: ("3", BulkCallGate.GrpcOverMessageCapDetail))));
        Assert.False(BulkCallGate.RefusedOverMessageCap(Answered(trailers: ("8", "Sending message exceeds the maximum configured message size."))));

        static HttpResponse Answered((string Status, string? Message)? headers = null, (string Status, string? Message)? trailers = null)
        {
            var context = new DefaultHttpContext();
            var feature = new TrailersFeature();
            context.Features.Set<Microsoft.AspNetCore.Http.Features.IHttpResponseTrailersFeature>(feature);
            Set(context.Response.Headers, headers);
            Set(feature.Trailers, trailers);
            return context.Response;
        }

        static void Set(IHeaderDictionary target, (string Status, string? Message)? status)
        {
            if (status is { } s)
            {
                target["grpc-status"] = s.Status;
                if (s.Message is not null)
                {
                    target["grpc-message"] = s.Message;
                }
            }
        }
    }

    private sealed class TrailersFeature : Microsoft.AspNetCore.Http.Features.IHttpResponseTrailersFeature
    {
        public IHeaderDictionary Trailers { get; set; } = new HeaderDictionary();
    }

    [Fact]
    public void BulkMethod_ByTheRoutedGrpcMethodNotThePath_WithoutEndpointPathMatchedAsRoutingDoes()
    {
        // Routed: the endpoint's gRPC method decides, whatever the path's spelling.
        Assert.Equal("ShareKeys", BulkCallGate.BulkMethod(Routed("/SECUREFED.V1.AGGREGATION/sharekeys/", "ShareKeys")));
        Assert.Equal("Unmask", BulkCallGate.BulkMethod(Routed("/anything", "Unmask")));
        Assert.Null(BulkCallGate.BulkMethod(Routed(ShareKeysPath, "GetStatus")));
        var notGrpc = new DefaultHttpContext();
        notGrpc.Request.Path = ShareKeysPath;
        notGrpc.SetEndpoint(new Endpoint(_ => Task.CompletedTask, new EndpointMetadataCollection(), "not gRPC"));
        Assert.Null(BulkCallGate.BulkMethod(notGrpc));

        // No endpoint: the path as routing matches it (case-insensitively, a trailing slash ignored).
        foreach (string path in new[] { ShareKeysPath, "/securefed.v1.aggregation/sharekeys", "/SECUREFED.V1.AGGREGATION/SHAREKEYS/", ShareKeysPath + "/" })
        {
            Assert.Equal("ShareKeys", BulkCallGate.BulkMethod(Context(null, path, out _)));
        }

        Assert.Equal("Unmask", BulkCallGate.BulkMethod(Context(null, "/securefed.v1.aggregation/unmask/", out _)));
        foreach (string path in new[] { "/", "", "/securefed.v1.Aggregation/GetStatus", ShareKeysPath + "//", "/securefed.v1.Aggregation/ShareKeysX", "/other.Aggregation/ShareKeys" })
        {
            Assert.Null(BulkCallGate.BulkMethod(Context(null, path, out _)));
        }

        static DefaultHttpContext Routed(string path, string method)
        {
            var context = new DefaultHttpContext();
            context.Request.Path = path;
            var grpc = new Method<byte[], byte[]>(MethodType.Unary, "securefed.v1.Aggregation", method, Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
            context.SetEndpoint(new Endpoint(_ => Task.CompletedTask, new EndpointMetadataCollection(new GrpcMethodMetadata(typeof(Wire.V1.Aggregation.AggregationBase), grpc)), "gRPC"));
            return context;
        }
    }

    [Fact]
    public void TryEnter_UpToTheLimitPerSite_ThenNullUntilOneIsGivenBack()
    {
        var gate = new BulkCallGate(2);
        IDisposable first = Assert.IsAssignableFrom<IDisposable>(gate.TryEnter("site-x"));
        IDisposable second = Assert.IsAssignableFrom<IDisposable>(gate.TryEnter("site-x"));
        Assert.Null(gate.TryEnter("site-x"));
        Assert.Null(gate.TryEnter("site-x"));
        Assert.Equal(2, gate.InFlight("site-x"));

        // Another site has its own places.
        using (IDisposable other = Assert.IsAssignableFrom<IDisposable>(gate.TryEnter("site-a")))
        {
            Assert.NotNull(gate.TryEnter("site-a"));
            Assert.Equal(2, gate.InFlight("site-a"));
        }

        // Given back once, however often disposed.
        first.Dispose();
        first.Dispose();
        Assert.Equal(1, gate.InFlight("site-x"));
        IDisposable third = Assert.IsAssignableFrom<IDisposable>(gate.TryEnter("site-x"));
        Assert.Null(gate.TryEnter("site-x"));
        second.Dispose();
        third.Dispose();
        Assert.Equal(0, gate.InFlight("site-x"));
        Assert.Equal(0, gate.InFlight("never-seen"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BulkCallGate(0));
    }

    [Fact]
    public async Task Middleware_OverTheLimit_TrailersOnlyResourceExhaustedBodyUnread_PlacesGivenBackOnExceptionAndAbort()
    {
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "gate", ["site-a", "site-x"], "127.0.0.1"));
        using PartyKit siteX = PartyKit.Load(provisioned.SiteKitDirectories["site-x"]);
        using PartyKit siteA = PartyKit.Load(provisioned.SiteKitDirectories["site-a"]);
        using PartyKit aggregator = PartyKit.Load(provisioned.AggregatorKitDirectory);
        var gate = new BulkCallGate(2);
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int reached = 0;
        RequestDelegate pipeline = Pipeline(gate, siteX.Manifest, async context =>
        {
            Interlocked.Increment(ref reached);
            if (context.Request.Headers.ContainsKey("x-test-throw"))
            {
                throw new InvalidOperationException("the service failed");
            }

            await hold.Task.WaitAsync(context.RequestAborted);
        });

        // Two ShareKeys/Unmask calls of site-x are let through and held.
        var held = new List<Task>
        {
            pipeline(Context(siteX.TlsCertificate, ShareKeysPath, out _)),
            pipeline(Context(siteX.TlsCertificate, UnmaskPath, out _)),
        };
        Assert.Equal(2, gate.InFlight("site-x"));

        // The third is answered at once, trailers-only, and its body is never read.
        DefaultHttpContext refused = Context(siteX.TlsCertificate, ShareKeysPath, out ThrowingBody body);
        await pipeline(refused).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(StatusCodes.Status200OK, refused.Response.StatusCode);
        Assert.Equal("application/grpc", refused.Response.ContentType);
        Assert.Equal(((int)StatusCode.ResourceExhausted).ToString(System.Globalization.CultureInfo.InvariantCulture), refused.Response.Headers["grpc-status"].ToString());
        Assert.Equal("ShareKeys: site 'site-x' already has 2 ShareKeys/Unmask calls in flight (the limit per site); refused before reading the request, retry when one has finished",
            Uri.UnescapeDataString(refused.Response.Headers["grpc-message"].ToString()));
        Assert.False(body.WasRead);
        Assert.Equal(2, reached);

        // A call forwarded by a silo with the aggregator's certificate counts against the site it names.
        DefaultHttpContext forwarded = Context(aggregator.TlsCertificate, UnmaskPath, out _);
        forwarded.Request.Headers[ForwardedIdentity.SiteHeader] = "site-x";
        forwarded.Request.Headers[ForwardedIdentity.SiloHeader] = "silo-2";
        await pipeline(forwarded).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("8", forwarded.Response.Headers["grpc-status"].ToString());

        // Other sites and other methods are not counted against site-x.
        using var abortA = new CancellationTokenSource();
        DefaultHttpContext honest = Context(siteA.TlsCertificate, ShareKeysPath, out _);
        honest.RequestAborted = abortA.Token;
        Task honestCall = pipeline(honest);
        Assert.Equal(1, gate.InFlight("site-a"));
        DefaultHttpContext status = Context(siteX.TlsCertificate, "/securefed.v1.Aggregation/GetStatus", out _);
        status.Request.Headers["x-test-throw"] = "1";
        await Assert.ThrowsAsync<InvalidOperationException>(() => pipeline(status));
        Assert.Equal(2, gate.InFlight("site-x"));

        // Callers the service's identity rule refuses are refused by the gate with that rule's status and reason, their bodies
        // unread, counted against no one: no certificate, and a site's own certificate with the forwarding header (which would
        // otherwise pass uncounted and make this process buffer a request per stream, however many the site opens).
        int before = reached;
        DefaultHttpContext anonymous = Context(null, ShareKeysPath, out ThrowingBody anonymousBody);
        await pipeline(anonymous).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(((int)StatusCode.Unauthenticated).ToString(System.Globalization.CultureInfo.InvariantCulture), anonymous.Response.Headers["grpc-status"].ToString());
        Assert.Equal("a client certificate issued by the federation CA is required", Uri.UnescapeDataString(anonymous.Response.Headers["grpc-message"].ToString()));
        Assert.False(anonymousBody.WasRead);
        for (int i = 0; i < 50; i++)
        {
            DefaultHttpContext posing = Context(siteX.TlsCertificate, i % 2 == 0 ? ShareKeysPath : "/securefed.v1.Aggregation/GetStatus", out ThrowingBody posingBody);
            posing.Request.Headers[ForwardedIdentity.SiteHeader] = "site-a";
            await pipeline(posing).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(((int)StatusCode.PermissionDenied).ToString(System.Globalization.CultureInfo.InvariantCulture), posing.Response.Headers["grpc-status"].ToString());
            Assert.StartsWith("the 'securefed-forwarded-site' header (naming 'site-a') is accepted only from a silo of the aggregator cluster",
                Uri.UnescapeDataString(posing.Response.Headers["grpc-message"].ToString()), StringComparison.Ordinal);
            Assert.False(posingBody.WasRead);
        }

        Assert.Equal(before, reached);
        Assert.Equal(2, gate.InFlight("site-x"));
        Assert.Equal(1, gate.InFlight("site-a"));

        // A refused caller's call to another service (gRPC health checks) is not the gate's to refuse.
        DefaultHttpContext health = Context(null, "/grpc.health.v1.Health/Check", out _);
        health.Request.Headers["x-test-throw"] = "1";
        await Assert.ThrowsAsync<InvalidOperationException>(() => pipeline(health));

        // An aborted call gives its place back.
        await abortA.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => honestCall);
        Assert.Equal(0, gate.InFlight("site-a"));

        // Calls that complete give theirs back, and so does one whose service throws.
        hold.SetResult();
        await Task.WhenAll(held).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, gate.InFlight("site-x"));
        DefaultHttpContext failing = Context(siteX.TlsCertificate, ShareKeysPath, out _);
        failing.Request.Headers["x-test-throw"] = "1";
        await Assert.ThrowsAsync<InvalidOperationException>(() => pipeline(failing));
        Assert.Equal(0, gate.InFlight("site-x"));
    }

    [Fact]
    public void TryEnterCall_UpToTheCallLimitPerSite_CountedApartFromBulkPlaces_ThenNullUntilOneIsGivenBack()
    {
        var gate = new BulkCallGate(2, 3);
        Assert.Equal(3, gate.CallLimitPerSite);
        Assert.Equal(BulkCallGate.DefaultCallLimitPerSite, new BulkCallGate(2).CallLimitPerSite);
        IDisposable[] held = [.. Enumerable.Range(0, 3).Select(_ => Assert.IsAssignableFrom<IDisposable>(gate.TryEnterCall("site-x")))];
        Assert.Null(gate.TryEnterCall("site-x"));
        Assert.Equal(3, gate.CallsInFlight("site-x"));
        Assert.Equal(0, gate.InFlight("site-x"));
        using (IDisposable bulk = Assert.IsAssignableFrom<IDisposable>(gate.TryEnter("site-x")))
        {
            Assert.Equal(3, gate.CallsInFlight("site-x"));
        }

        using (IDisposable other = Assert.IsAssignableFrom<IDisposable>(gate.TryEnterCall("site-a")))
        {
            Assert.Equal(1, gate.CallsInFlight("site-a"));
        }

        held[0].Dispose();
        held[0].Dispose();
        Assert.Equal(2, gate.CallsInFlight("site-x"));
        held[0] = Assert.IsAssignableFrom<IDisposable>(gate.TryEnterCall("site-x"));
        Assert.Null(gate.TryEnterCall("site-x"));
        foreach (IDisposable place in held)
        {
            place.Dispose();
        }

        Assert.Equal(0, gate.CallsInFlight("site-x"));
        Assert.Equal(0, gate.CallsInFlight("never-seen"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BulkCallGate(2, 1));
    }

    [Fact]
    public async Task Middleware_CallsOfAnyMethodOverTheCallLimit_RefusedBodyUnread_PlacesGivenBackOnCompletionCancellationAndException()
    {
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "gate", ["site-a", "site-x"], "127.0.0.1"));
        using PartyKit siteX = PartyKit.Load(provisioned.SiteKitDirectories["site-x"]);
        using PartyKit siteA = PartyKit.Load(provisioned.SiteKitDirectories["site-a"]);
        using PartyKit aggregator = PartyKit.Load(provisioned.AggregatorKitDirectory);
        var gate = new BulkCallGate(2, 4);
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var refusals = new List<(string Site, string Reason, string Message)>();
        int reached = 0;
        var app = new ApplicationBuilder(new ServiceCollection().BuildServiceProvider());
        BulkCallGate.UseBulkCallGate(app, gate, siteX.Manifest, NullLogger.Instance, (caller, _, reason, message) =>
        {
            refusals.Add((caller.Caller, reason, message));
            return true;
        });
        app.Run(async context =>
        {
            Interlocked.Increment(ref reached);
            if (context.Request.Headers.ContainsKey("x-test-throw"))
            {
                throw new InvalidOperationException("the service failed");
            }

            await hold.Task.WaitAsync(context.RequestAborted);
        });
        RequestDelegate pipeline = app.Build();
        const string Status = "/securefed.v1.Aggregation/GetStatus";

        // site-x: a ShareKeys, a forwarded AwaitRound naming site-x, and two GetStatus calls are let through and held.
        using var abortX = new CancellationTokenSource();
        DefaultHttpContext aborted = Context(siteX.TlsCertificate, Status, out _);
        aborted.RequestAborted = abortX.Token;
        DefaultHttpContext forwarded = Context(aggregator.TlsCertificate, "/securefed.v1.Aggregation/AwaitRound", out _);
        forwarded.Request.Headers[ForwardedIdentity.SiteHeader] = "site-x";
        forwarded.Request.Headers[ForwardedIdentity.SiloHeader] = "silo-2";
        Task abortedCall = pipeline(aborted);
        var held = new List<Task>
        {
            pipeline(Context(siteX.TlsCertificate, ShareKeysPath, out _)),
            pipeline(forwarded),
            pipeline(Context(siteX.TlsCertificate, Status, out _)),
        };
        Assert.Equal(4, gate.CallsInFlight("site-x"));
        Assert.Equal(1, gate.InFlight("site-x"));

        // A fifth call of any method is answered at once, trailers-only, its body never read; a bulk one too (with this message).
        foreach (string path in new[] { Status, ShareKeysPath })
        {
            DefaultHttpContext refused = Context(siteX.TlsCertificate, path, out ThrowingBody body);
            await pipeline(refused).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(StatusCodes.Status200OK, refused.Response.StatusCode);
            Assert.Equal("application/grpc", refused.Response.ContentType);
            Assert.Equal("8", refused.Response.Headers["grpc-status"].ToString());
            Assert.Equal($"{path[(path.LastIndexOf('/') + 1)..]}: site 'site-x' already has 4 calls in flight at this aggregator process (the limit per site, SecureFed:MaxCallsPerSite); refused before reading the request, retry when one has finished",
                Uri.UnescapeDataString(refused.Response.Headers["grpc-message"].ToString()));
            Assert.False(body.WasRead);
        }

        Assert.Equal(4, reached);
        Assert.Equal(4, gate.CallsInFlight("site-x"));
        Assert.Equal(new[] { ("site-x", "too_many_calls"), ("site-x", "too_many_calls") }, refusals.Select(r => (r.Site, r.Reason)));

        // Another site has its own places; an unidentified caller is refused by the gate (the service's rule), uncounted and
        // reported to the audit callback under the caller's description with its own reason.
        DefaultHttpContext other = Context(siteA.TlsCertificate, Status, out _);
        other.Request.Headers["x-test-throw"] = "1";
        await Assert.ThrowsAsync<InvalidOperationException>(() => pipeline(other));
        DefaultHttpContext anonymous = Context(null, Status, out ThrowingBody anonymousBody);
        await pipeline(anonymous).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(((int)StatusCode.Unauthenticated).ToString(System.Globalization.CultureInfo.InvariantCulture), anonymous.Response.Headers["grpc-status"].ToString());
        Assert.False(anonymousBody.WasRead);
        Assert.Equal(("(no certificate)", "no_certificate"), (refusals[^1].Site, refusals[^1].Reason));
        Assert.Equal(0, gate.CallsInFlight("site-a"));

        // Cancellation gives a place back; a call whose service throws takes one and gives it back.
        await abortX.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abortedCall);
        Assert.Equal(3, gate.CallsInFlight("site-x"));
        DefaultHttpContext failing = Context(siteX.TlsCertificate, Status, out _);
        failing.Request.Headers["x-test-throw"] = "1";
        await Assert.ThrowsAsync<InvalidOperationException>(() => pipeline(failing));
        Assert.Equal(3, gate.CallsInFlight("site-x"));

        // A bulk call refused by the bulk limit gives its call place back.
        held.Add(pipeline(Context(siteX.TlsCertificate, UnmaskPath, out _)));
        Assert.Equal(4, gate.CallsInFlight("site-x"));
        var bulkGate = new BulkCallGate(1, 4);
        RequestDelegate bulkPipeline = Pipeline(bulkGate, siteX.Manifest, context => hold.Task.WaitAsync(context.RequestAborted));
        Task bulkHeld = bulkPipeline(Context(siteX.TlsCertificate, ShareKeysPath, out _));
        DefaultHttpContext bulkRefused = Context(siteX.TlsCertificate, UnmaskPath, out _);
        await bulkPipeline(bulkRefused).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.StartsWith("Unmask: site 'site-x' already has 1 ShareKeys/Unmask calls in flight", Uri.UnescapeDataString(bulkRefused.Response.Headers["grpc-message"].ToString()), StringComparison.Ordinal);
        Assert.Equal(1, bulkGate.CallsInFlight("site-x"));

        // Calls that complete give theirs back.
        hold.SetResult();
        await Task.WhenAll(held.Append(bulkHeld)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, gate.CallsInFlight("site-x"));
        Assert.Equal(0, gate.InFlight("site-x"));
        Assert.Equal(0, bulkGate.CallsInFlight("site-x"));
    }

    [Theory]
    [InlineData(null, null, 16, null)]
    [InlineData("8", null, 8, null)]
    [InlineData("1024", null, 1024, null)]
    [InlineData("7", null, 7, "SecureFed:MaxCallsPerSite must be between 8 (MaxBulkCallsPerSite + the 6 calls an honest agent may have in flight) and 1024, got 7.")]
    [InlineData("1025", null, 1025, "SecureFed:MaxCallsPerSite must be between 8 (MaxBulkCallsPerSite + the 6 calls an honest agent may have in flight) and 1024, got 1025.")]
    [InlineData(null, "11", 16, "SecureFed:MaxCallsPerSite must be between 17 (MaxBulkCallsPerSite + the 6 calls an honest agent may have in flight) and 1024, got 16.")]
    public void AggregatorOptions_MaxCallsPerSite_BoundDefaultedAndValidatedAgainstMaxBulkCallsPerSite(string? configured, string? bulk, int bound, string? error)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = "fed",
            ["SecureFed:KitDirectory"] = "kit",
            ["SecureFed:ModelSpecSha256"] = new string('a', 64),
            ["SecureFed:MaxCallsPerSite"] = configured,
            ["SecureFed:MaxBulkCallsPerSite"] = bulk,
        };

        var options = new AggregatorOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings.Where(kv => kv.Value is not null)).Build().GetSection(AggregatorOptions.Section).Bind(options);

        Assert.Equal(bound, options.MaxCallsPerSite);
        Assert.Equal(error is null ? [] : [error], options.Validate());
        Assert.Empty(AggregatorHost.UnknownSettings(new ConfigurationBuilder().AddInMemoryCollection(settings.Where(kv => kv.Value is not null)).Build()));
    }

    [Theory]
    [InlineData(null, 2, null)]
    [InlineData("1", 1, null)]
    [InlineData("64", 64, null)]
    [InlineData("0", 0, "SecureFed:MaxBulkCallsPerSite must be between 1 and 64, got 0.")]
    [InlineData("65", 65, "SecureFed:MaxBulkCallsPerSite must be between 1 and 64, got 65.")]
    public void AggregatorOptions_MaxBulkCallsPerSite_BoundDefaultedAndValidated(string? configured, int bound, string? error)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = "fed",
            ["SecureFed:KitDirectory"] = "kit",
            ["SecureFed:ModelSpecSha256"] = new string('a', 64),
        };
        if (configured is not null)
        {
            settings["SecureFed:MaxBulkCallsPerSite"] = configured;
            settings["SecureFed:MaxCallsPerSite"] = "1024"; // at least MaxBulkCallsPerSite + 6
        }

        var options = new AggregatorOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AggregatorOptions.Section).Bind(options);

        Assert.Equal(bound, options.MaxBulkCallsPerSite);
        Assert.Equal(error is null ? [] : [error], options.Validate());
    }

    [Fact]
    public void PercentEncode_NonPrintableAndPercent_EncodedAsUtf8Bytes()
    {
        Assert.Equal("a b%25c%0A%C3%A9", BulkCallGate.PercentEncode("a b%c\né"));
        Assert.Equal("a b%c\né", Uri.UnescapeDataString(BulkCallGate.PercentEncode("a b%c\né")));
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

    private static RequestDelegate Pipeline(BulkCallGate gate, FederationManifest manifest, RequestDelegate service)
    {
        var app = new ApplicationBuilder(new ServiceCollection().BuildServiceProvider());
        BulkCallGate.UseBulkCallGate(app, gate, manifest, NullLogger.Instance);
        app.Run(service);
        return app.Build();
    }

    private static DefaultHttpContext Context(X509Certificate2? certificate, string path, out ThrowingBody body)
    {
        body = new ThrowingBody();
        var context = new DefaultHttpContext();
        context.Connection.ClientCertificate = certificate;
        context.Request.Method = HttpMethods.Post;
        context.Request.Path = path;
        context.Request.ContentType = "application/grpc";
        context.Request.Body = body;
        return context;
    }

    /// <summary>A request body that records (and fails) any read: a refused request must not be read.</summary>
    private sealed class ThrowingBody : Stream
    {
        public bool WasRead { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            WasRead = true;
            throw new InvalidOperationException("the request body was read");
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            WasRead = true;
            throw new InvalidOperationException("the request body was read");
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
