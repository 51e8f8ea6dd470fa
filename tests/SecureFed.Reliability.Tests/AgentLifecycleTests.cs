using System.Runtime.InteropServices;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Tagger;
using SecureFed.Testing;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// How an agent stops: Ctrl-C while it trains (TorchSharp in process) or waits for a round is a clean stop, never a
/// training failure; an aggregator that is not there yet is waited for, past the client's circuit breaker; a kit of
/// another federation and a revoked site stop the agent with one clear reason.
/// </summary>
public sealed class AgentLifecycleTests : IDisposable
{
    private static readonly string[] ThreeSites = ["site-a", "site-b", "site-c"];
    private static readonly TimeSpan Hang = TimeSpan.FromSeconds(120);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-lifecycle-").FullName;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RunAsync_CancelledWhileTraining_DeclinesAsStoppedWithoutRecordingOrSendingAFailure(bool nativeErrorOnStop)
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ThreeSites, new Dictionary<string, string>
        {
            ["Rounds"] = "1",
            ["TrainingTimeoutSeconds"] = "600",
        });
        await fed.StartAggregatorAsync();
        using var trainer = new TorchUntilCancelledTrainer(nativeErrorOnStop);
        fed.StartAgent("site-a", 100);
        fed.StartAgent("site-b", 100);
        // The decline gets a minute, not the product's 3 s: on a starved machine a late decline would leave the round to
        // its 600 s deadline and fail this test for a reason it does not test (the budget is tested below).
        (Task run, CancellationTokenSource stop) = fed.StartAgent("site-c", 100, trainer: trainer, configureRunner: r => r.StopDeclineTimeout = TimeSpan.FromSeconds(60));

        await trainer.Training.WaitAsync(Hang);
        await stop.CancelAsync();

        // Act: the runner waits for the training thread to leave TorchSharp, then stops as cancelled.
        Exception error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Hang));

        Assert.IsNotType<LocalTrainingException>(error);
        Assert.True(trainer.Left.Task.IsCompleted, "the runner returned while the trainer was still inside TorchSharp");
        Assert.DoesNotContain(fed.Reports, r => r.Site == "site-c" && r.Outcome.StartsWith("failed", StringComparison.Ordinal));
        Assert.Contains(fed.Reports, r => r.Site == "site-c" && r.Outcome == AgentRunner.StoppedOutcome);
        string audit = ReadAudit(fed.AgentDataDirectory("site-c"));
        Assert.Contains($"\"reason\":\"{AgentRunner.StoppedOutcome}\"", audit, StringComparison.Ordinal);
        Assert.DoesNotContain("failed", audit, StringComparison.Ordinal);
        Assert.DoesNotContain("INTERNAL ASSERT", audit, StringComparison.Ordinal);

        // The stopped site declined, so the other two go on at once: the round ends long before its 600 s training
        // deadline, and the aggregator's log says why site-c left.
        await fed.Coordinator.Finished.WaitAsync(Hang);
        Assert.Contains($"site declined: {AgentRunner.StoppedOutcome}", ReadAggregatorAudit(fed), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_CancelledWhileTrainingAndTheDeclineIsNeverAnswered_StopsAfterItsBudgetAndSaysTheDeclineWasNotDelivered()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ThreeSites, new Dictionary<string, string>
        {
            ["Rounds"] = "1",
            ["TrainingTimeoutSeconds"] = "600",
        });
        await fed.StartAggregatorAsync();
        using var trainer = new TorchUntilCancelledTrainer(nativeErrorOnStop: false);
        var logs = new CapturingLogger();
        fed.StartAgent("site-a", 100);
        fed.StartAgent("site-b", 100);
        (Task run, CancellationTokenSource stop) = fed.StartAgent("site-c", 100, trainer: trainer, logger: logs, wrap: inner => new UnansweredDeclineHandler(inner),
            configureRunner: r => r.StopDeclineTimeout = TimeSpan.FromSeconds(1));

        await trainer.Training.WaitAsync(Hang);
        await stop.CancelAsync();

        // Act: the aggregator never answers the decline; the agent stops once its budget is spent, not at any deadline.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Hang));

        Assert.Contains(logs.Lines, l => l.Message.Contains("stopped during round 1; its decline was not delivered", StringComparison.Ordinal));
        Assert.Contains($"\"reason\":\"{AgentRunner.StoppedOutcome}\"", ReadAudit(fed.AgentDataDirectory("site-c")), StringComparison.Ordinal);
        Assert.DoesNotContain(fed.Reports, r => r.Site == "site-c" && r.Outcome.StartsWith("failed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RunAsync_CancelledWhileWaitingForARound_StopsAsCancelledNotWithACancelledStatus()
    {
        // One site of three: no round opens, so the agent long-polls the aggregator.
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ThreeSites, new Dictionary<string, string> { ["Rounds"] = "1" });
        await fed.StartAggregatorAsync();
        var polling = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        (Task run, CancellationTokenSource stop) = fed.StartAgent("site-a", 100, wrap: inner => new SignallingHandler(inner, polling));

        await polling.Task.WaitAsync(Hang);
        await stop.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Hang));
    }

    [Fact]
    public void IsStop_CancelledCallAfterTheStop_IsAStopNotAFailure()
    {
        var cancelled = new RpcException(new Status(StatusCode.Cancelled, "Call canceled by the client."));
        Assert.True(AgentWorker.IsStop(cancelled, new CancellationToken(canceled: true)));
        Assert.True(AgentWorker.IsStop(new OperationCanceledException(), new CancellationToken(canceled: true)));
        Assert.False(AgentWorker.IsStop(cancelled, CancellationToken.None));
        Assert.False(AgentWorker.IsStop(new RpcException(new Status(StatusCode.Unavailable, "down")), new CancellationToken(canceled: true)));
    }

    [Fact]
    public async Task RunAsync_AggregatorAbsentPastTheCircuitBreaker_KeepsWaitingAndJoinsWhenItStarts()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ThreeSites, new Dictionary<string, string> { ["Rounds"] = "1" });
        var logs = new CapturingLogger();
        foreach (string site in ThreeSites)
        {
            // Short waits, so the client's circuit breaker (20 failed calls) opens while the aggregator is still absent.
            fed.StartAgent(site, 100, maxRetries: 1, logger: site == "site-a" ? logs : null, configureRunner: r =>
            {
                r.FirstUnreachableWait = TimeSpan.FromMilliseconds(1);
                r.MaxUnreachableWait = TimeSpan.FromMilliseconds(20);
            });
        }

        // Wait until the breaker has opened and the agent has said it keeps waiting anyway.
        await WaitUntilAsync(() => logs.Lines.Any(l => l.Message.Contains("still waiting", StringComparison.Ordinal) && l.Message.Contains("pauses calls", StringComparison.Ordinal)));
        await fed.StartAggregatorAsync();

        await fed.WaitFinishedAsync(Hang);
        Assert.Equal(3, fed.Reports.Count(r => r.Completed));
    }

    /// <summary>
    /// The client's circuit breaker opens in the middle of a round (the aggregator unreachable while the site sends its
    /// keys: every attempt of the call fails until the breaker refuses the next one with a <c>BrokenCircuitException</c>,
    /// which is no <c>RpcException</c>). The round is over for the site, reported as such, and the agent goes on: it waits
    /// for the aggregator and takes part in the next round. Without <c>AgentRunner.RunRoundAsync</c>'s catch of
    /// <c>BrokenCircuitException</c> the exception ends <c>RunAsync</c> and with it the agent service.
    /// </summary>
    [Fact]
    public async Task RunAsync_CircuitBreakerOpensDuringARound_RoundEndsSayingSoAndTheAgentTakesPartInTheNext()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ThreeSites, new Dictionary<string, string>
        {
            ["Rounds"] = "2",
            ["Threshold"] = "2",
            ["TrainingTimeoutSeconds"] = "10",
        });
        await fed.StartAggregatorAsync();
        fed.StartAgent("site-b", 200);
        fed.StartAgent("site-c", 300);
        KeysOutageHandler? outage = null;
        // Retries without pauses (the client's clock makes every timer due at once), so the breaker (20 calls, 90 % failed)
        // opens within the one AdvertiseKeys call; up to 40 retries, so it opens before they run out.
        (Task run, _) = fed.StartAgent("site-a", 100, wrap: inner => outage = new KeysOutageHandler(inner), maxRetries: 40, clientTime: new ZeroDelayTime(), configureRunner: r =>
        {
            r.FirstUnreachableWait = TimeSpan.FromMilliseconds(10);
            r.MaxUnreachableWait = TimeSpan.FromMilliseconds(200);
        });

        await fed.WaitFinishedAsync(Hang);

        Assert.True(run.IsCompletedSuccessfully, $"site-a's agent stopped: {run.Exception}");
        Assert.True(outage!.Failed >= 18, $"only {outage.Failed} AdvertiseKeys attempts failed: the breaker cannot have opened");
        AgentRoundReport first = Assert.Single(fed.Reports, r => r.Site == "site-a" && r.Round == 1);
        Assert.False(first.Completed);
        Assert.StartsWith("ended: the aggregator could not be reached: ", first.Outcome, StringComparison.Ordinal);
        Assert.Contains("circuit", first.Outcome, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(fed.Reports, r => r.Site == "site-a" && r.Round > 1 && r.Completed);
    }

    [Fact]
    public async Task RunAsync_KitOfAnotherFederation_StopsNamingTheCaInsteadOfWaiting()
    {
        await using TestFederation ours = TestFederation.Provision(Path.Combine(_dir, "ours"), ThreeSites);
        await using TestFederation other = TestFederation.Provision(Path.Combine(_dir, "other"), ThreeSites);
        await ours.StartAggregatorAsync();

        (Task run, _) = other.StartAgent("site-a", 100, maxRetries: 1, aggregatorAddress: ours.Address);

        AggregatorTrustException error = await Assert.ThrowsAsync<AggregatorTrustException>(() => run.WaitAsync(Hang));
        Assert.True(error.AggregatorCertificateRejected);
        Assert.Contains(Path.GetFullPath(Path.Combine(other.Provisioned.SiteKitDirectories["site-a"], "ca.crt")), error.Message, StringComparison.Ordinal);
        Assert.Contains("not signed by this federation's CA", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("unreachable", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RunAsync_OwnCertificateOutOfDate_StopsSayingSoInsteadOfWaiting(bool expired)
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ThreeSites);
        await fed.StartAggregatorAsync();
        string path = Path.GetFullPath(Path.Combine(fed.Provisioned.SiteKitDirectories["site-a"], "tls.crt"));
        using X509Certificate2 certificate = X509Certificate2.CreateFromPem(File.ReadAllText(path));
        DateTimeOffset now = expired ? certificate.NotAfter.ToUniversalTime().AddMinutes(1) : certificate.NotBefore.ToUniversalTime().AddMinutes(-1);

        (Task run, _) = fed.StartAgent("site-a", 100, maxRetries: 1, configureRunner: r => r.Time = new FixedTime(now));

        AggregatorTrustException error = await Assert.ThrowsAsync<AggregatorTrustException>(() => run.WaitAsync(Hang));
        Assert.False(error.AggregatorCertificateRejected);
        Assert.Contains($"this site's certificate ({path})", error.Message, StringComparison.Ordinal);
        Assert.Contains(expired ? ") expired at " : ") is not valid before ", error.Message, StringComparison.Ordinal);
        Assert.Contains("renewed site kit", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TrustError_AggregatorCertificateRejectedAsOutOfDate_SaysItExpiredNotAnotherFederation()
    {
        var options = new AgentOptions { Site = "site-a", KitDirectory = "/kits/site-a" };
        var handshake = new RpcException(new Status(StatusCode.Unavailable, "Error starting gRPC call.",
            new System.Security.Authentication.AuthenticationException("The remote certificate was rejected by the provided RemoteCertificateValidationCallback.")));
        const string Rejection = "certificate 'CN=aggregator' is outside its validity period (2026-10-01 00:00:00Z .. 2026-11-01 00:00:00Z)";

        AggregatorTrustException expired = AggregatorTrustException.From(handshake, options, new Uri("https://agg:7443"), Rejection)!;
        AggregatorTrustException other = AggregatorTrustException.From(handshake, options, new Uri("https://agg:7443"), "the certificate is not issued by this federation's CA")!;

        Assert.True(expired.AggregatorCertificateRejected);
        Assert.Contains("presented a certificate that has expired or is not yet valid (" + Rejection + "): its operator must renew it", expired.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("another federation", expired.Message, StringComparison.Ordinal);
        Assert.Contains("not signed by this federation's CA", other.Message, StringComparison.Ordinal);
        Assert.Contains("; the certificate is not issued by this federation's CA)", other.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TrustError_AddressAnswersPlainHttp_SaysItIsNotTlsNotThatTheSitesCertificateWasRefused()
    {
        // Review of session 45: an agent pointed at the aggregator's AdminListen (plain HTTP) was told that the aggregator
        // probably refused its certificate. The exception here is .NET's own for a reply that is not TLS.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        Task server = Task.Run(async () =>
        {
            using System.Net.Sockets.TcpClient peer = await listener.AcceptTcpClientAsync();
            System.Net.Sockets.NetworkStream stream = peer.GetStream();
            byte[] buffer = new byte[4096];
            _ = await stream.ReadAsync(buffer);
            await stream.WriteAsync("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray());
        });
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, port);
        using var tls = new System.Net.Security.SslStream(client.GetStream(), false, (_, _, _, _) => true);
        var handshakeFailure = await Assert.ThrowsAsync<System.Security.Authentication.AuthenticationException>(() => tls.AuthenticateAsClientAsync("127.0.0.1"));
        await server;
        var call = new RpcException(new Status(StatusCode.Unavailable, "Error starting gRPC call.", handshakeFailure));

        AggregatorTrustException error = AggregatorTrustException.From(call, new AgentOptions { Site = "site-a", KitDirectory = "/kits/site-a" }, new Uri($"https://127.0.0.1:{port}"))!;

        Assert.StartsWith($"the aggregator address https://127.0.0.1:{port}/ did not answer with TLS", error.Message, StringComparison.Ordinal);
        Assert.Contains("AdminListen", error.Message, StringComparison.Ordinal);
        Assert.Contains("Check SecureFed:Aggregator against the aggregator's SecureFed:Listen", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("refused this site's certificate", error.Message, StringComparison.Ordinal);
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    [Fact]
    public async Task RunAsync_RevokedSite_StopsWithOneClearLine()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ThreeSites, null, "site-c");
        await fed.StartAggregatorAsync();

        (Task run, _) = fed.StartAgent("site-c", 100);

        AggregatorRefusedSiteException error = await Assert.ThrowsAsync<AggregatorRefusedSiteException>(() => run.WaitAsync(Hang));
        Assert.Contains("the aggregator refused site 'site-c': site 'site-c' is revoked", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Status(", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
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

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var hang = new CancellationTokenSource(Hang);
        while (!condition())
        {
            await Task.Delay(20, hang.Token);
        }
    }

    private static string ReadAggregatorAudit(TestFederation fed) => ReadFiles(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory));

    private static string ReadAudit(string dataDirectory) => ReadFiles(AgentState.AuditDirectory(dataDirectory));

    private static string ReadFiles(string directory)
    {
        var text = new System.Text.StringBuilder();
        foreach (string file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith('.')))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            text.Append(reader.ReadToEnd());
        }

        return text.ToString();
    }

    /// <summary>Holds every DeclineRound call until the caller gives up, as an aggregator that never answers would.</summary>
    private sealed class UnansweredDeclineHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri!.AbsolutePath.EndsWith("/DeclineRound", StringComparison.Ordinal))
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>Every timer due at once (the client's retry pauses); the clock itself is the system's.</summary>
    private sealed class ZeroDelayTime : TimeProvider
    {
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
            => base.CreateTimer(callback, state, dueTime == Timeout.InfiniteTimeSpan ? dueTime : TimeSpan.Zero, period);
    }

    /// <summary>
    /// The aggregator unreachable for the site's AdvertiseKeys calls (connection refused) from the first one until the
    /// site next asks for a round; every other call goes through.
    /// </summary>
    private sealed class KeysOutageHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        private int _state; // 0: before the outage, 1: in it, 2: over
        private int _failed;

        public int Failed => Volatile.Read(ref _failed);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            string path = request.RequestUri!.AbsolutePath;
            if (path.EndsWith("/AdvertiseKeys", StringComparison.Ordinal) && Volatile.Read(ref _state) < 2)
            {
                Volatile.Write(ref _state, 1);
                Interlocked.Increment(ref _failed);
                throw new HttpRequestException(HttpRequestError.ConnectionError, "injected outage: connection refused");
            }

            if (path.EndsWith("/AwaitRound", StringComparison.Ordinal) && Volatile.Read(ref _state) == 1)
            {
                Volatile.Write(ref _state, 2);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>Signals once the first request has gone out (the agent's long-poll for a round).</summary>
    private sealed class SignallingHandler(HttpMessageHandler inner, TaskCompletionSource sent) : DelegatingHandler(inner)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Task<HttpResponseMessage> response = base.SendAsync(request, cancellationToken);
            sent.TrySetResult();
            return response;
        }
    }

    /// <summary>
    /// The test federation's model shape, trained by the real tiny tagger (TorchSharp, in process) for as long as it
    /// takes to be cancelled; with <c>nativeErrorOnStop</c> the stop surfaces as libtorch's error did when the process
    /// ended under a training thread.
    /// </summary>
    private sealed class TorchUntilCancelledTrainer(bool nativeErrorOnStop) : ILocalTrainer, IDisposable
    {
        private static readonly SecureFed.Agent.ModelSpec Spec = new(TaggerConfig.Tiny with { WordBuckets = 256, CharNgramBuckets = 256 }, ["Disease"]);
        private readonly TaggerLocalTrainer _tagger = new(Spec, SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 40, 1), [], "cpu", 0.01, 1, TaggerOptimizer.Sgd);
        private readonly float[] _initial = TaggerLocalTrainer.InitialParameters(Spec, seed: 1);
        private readonly TaskCompletionSource _training = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Training => _training.Task;

        public TaskCompletionSource Left { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string ModelSpecSha256 => FakeTrainer.SpecSha;

        public int ParameterCount => TestFederation.Parameters;

        public long ExampleCount => 100;

        public long ExpectedSteps(LocalTrainingPlan plan) => new FakeTrainer("x", ParameterCount, ExampleCount).ExpectedSteps(plan);

        public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
        {
            _training.TrySetResult();
            try
            {
                // 200,000 DP-SGD steps: it runs until the token is cancelled (the trainer checks between steps).
                _tagger.Train(_initial, new LocalTrainingPlan(plan.Round, 100_000, 1.0, 1.0, 0.5), cancellationToken);
            }
            catch (OperationCanceledException) when (nativeErrorOnStop)
            {
                throw new ExternalException("schema_.has_value() INTERNAL ASSERT FAILED at \"/pytorch/aten/src/ATen/core/dispatch/OperatorEntry.h\":80, please report a bug to PyTorch.");
            }
            finally
            {
                Left.TrySetResult();
            }

            throw new InvalidOperationException("the training ran to its end: it was not cancelled");
        }

        public void Dispose() => _tagger.Dispose();
    }
}
