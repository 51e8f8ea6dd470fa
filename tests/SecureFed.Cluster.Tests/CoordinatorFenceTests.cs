using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The round coordinator under a coordinator fence (the cluster's lease, docs/cluster.md §6): when the fence is lost in
/// the middle of a round, the coordinator aborts that round with the reason, opens and completes nothing more, and stops
/// with <see cref="CoordinatorLeaseLostException"/>. In one process, with real agents over mTLS.
/// </summary>
public sealed class CoordinatorFenceTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-fence-").FullName;

    [Fact]
    public async Task RunRound_FenceLostMidRound_RoundAbortedWithReasonAndCoordinatorStops()
    {
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), "fence", ["site-a", "site-b", "site-c"]);
        string data = Path.Combine(_dir, "aggregator");
        Dictionary<string, string?> settings = FrontFederation.Flatten(fed.AggregatorSettings(data, 0, rounds: 3));
        settings["SecureFed:Federation"] = "fence";
        settings["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var fence = new TestFence();
        WebApplication app = AggregatorHost.Build(configuration, (Func<float[]>?)null, roundServers: null, fence, logging => logging.SetMinimumLevel(LogLevel.Warning));
        await using (app)
        {
            await app.StartAsync().WaitAsync(Timeout);
            RoundCoordinator coordinator = app.Services.GetRequiredService<RoundCoordinator>();

            // Round 1 completes under the fence (each commit point reached it); the first upload of round 2 loses the fence.
            var latch = new UploadHook.StrongBox(); // its own latch: ClusterFrontTests may run in parallel
            fed.StartAgents(AggregatorHost.BoundAddress(app), "agents",
                handler => new UploadHook(handler, () => fed.Reports.Count(r => r.Round == 1 && r.Completed) == 3, fence.Lose, latch));
            await coordinator.Finished.WaitAsync(Timeout);
            var failure = Assert.IsType<CoordinatorLeaseLostException>(coordinator.Failure);
            Assert.Contains("lost the coordinator lease", failure.Message, StringComparison.Ordinal);
            Assert.True(fence.Commits >= 3); // start-up, round 1 opened, round 1 completed
            await fed.StopAgentsAsync();
            try
            {
                await app.StopAsync().WaitAsync(Timeout);
            }
            catch (CoordinatorLeaseLostException)
            {
                // the host rethrows the coordinator's failure on stop
            }
        }

        using AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(data));
        IReadOnlyList<RoundRecord> rounds = store.ListRounds();
        Assert.Equal(RoundStatus.Completed, rounds[0].Status);
        RoundRecord second = Assert.Single(rounds, r => r.Round == 2);
        Assert.Equal(RoundStatus.Aborted, second.Status);
        Assert.StartsWith("the coordinator lost its lease", second.AbortReason, StringComparison.Ordinal);
        Assert.Equal(2, rounds.Count); // nothing opened after the loss
        Assert.Null(store.LoadModel(2));
        Assert.True(AuditVerifier.Verify(AggregatorState.AuditDirectory(data)).Ok);
    }

    [Fact]
    public async Task OpenRound_ServersCannotOpenTheFirstAttempt_AbortedRecordedInTheirLedgerThenNextAttemptCompletes()
    {
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed-open"), "open-fails", ["site-a", "site-b", "site-c"]);
        string data = Path.Combine(_dir, "aggregator-open");
        Dictionary<string, string?> settings = FrontFederation.Flatten(fed.AggregatorSettings(data, 0, rounds: 1));
        settings["SecureFed:Federation"] = "open-fails";
        settings["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var servers = new FirstOpenFails();
        WebApplication app = AggregatorHost.Build(configuration, (Func<float[]>?)null, servers, logging => logging.SetMinimumLevel(LogLevel.Warning));
        await using (app)
        {
            await app.StartAsync().WaitAsync(Timeout);
            RoundCoordinator coordinator = app.Services.GetRequiredService<RoundCoordinator>();
            fed.StartAgents(AggregatorHost.BoundAddress(app), "agents-open");
            await coordinator.Finished.WaitAsync(Timeout);
            Assert.Null(coordinator.Failure);
            await fed.StopAgentsAsync();
            await app.StopAsync().WaitAsync(Timeout);
        }

        using AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(data));
        IReadOnlyList<RoundRecord> rounds = store.ListRounds();
        Assert.Equal([RoundStatus.Aborted, RoundStatus.Completed], rounds.Select(r => r.Status));
        (RoundParameters failed, string reason) = Assert.Single(servers.Recorded);
        Assert.Equal(1, failed.Round);
        Assert.Equal(rounds[0].AbortReason, reason);
        Assert.Equal("the round could not be opened: InvalidOperationException: no silo could host slice 1 (test)", reason);
        Assert.True(AuditVerifier.Verify(AggregatorState.AuditDirectory(data)).Ok);
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

    /// <summary>Round servers in this process whose first open fails, recording what the coordinator reports of it.</summary>
    private sealed class FirstOpenFails : IRoundServerFactory
    {
        private int _opens;

        public System.Collections.Concurrent.ConcurrentQueue<(RoundParameters Parameters, string Reason)> Recorded { get; } = new();

        public Task<IRoundServer> OpenAsync(RoundParameters parameters, CancellationToken cancellationToken) =>
            Interlocked.Increment(ref _opens) == 1
                ? throw new InvalidOperationException("no silo could host slice 1 (test)")
                : LocalRoundServerFactory.Instance.OpenAsync(parameters, cancellationToken);

        public Task RecordOpenFailedAsync(RoundParameters parameters, string reason, CancellationToken cancellationToken)
        {
            Recorded.Enqueue((parameters, reason));
            return Task.CompletedTask;
        }
    }

    private sealed class TestFence : ICoordinatorFence
    {
        private readonly CancellationTokenSource _lost = new();
        private int _commits;

        public CancellationToken Lost => _lost.Token;

        public long Epoch => 7;

        public int Commits => Volatile.Read(ref _commits);

        public void Lose() => _lost.Cancel();

        public void EnsureHeld()
        {
            if (_lost.IsCancellationRequested)
            {
                throw new CoordinatorLeaseLostException("this silo lost the coordinator lease: test");
            }
        }

        public Task CommitAsync(AggregatorState state, CancellationToken cancellationToken)
        {
            EnsureHeld();
            Interlocked.Increment(ref _commits);
            return Task.CompletedTask;
        }

        public Task SaveAuditAsync(AggregatorState state, CancellationToken cancellationToken)
        {
            EnsureHeld();
            return Task.CompletedTask;
        }
    }
}
