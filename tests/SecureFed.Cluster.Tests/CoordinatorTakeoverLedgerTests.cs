using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Cluster.Front;
using SecureFed.Cluster.Grains;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A round left open by a coordinator that stopped is aborted by its successor in the round store, the audit log and
/// the cluster's ledger (<see cref="LedgerGrain"/>), with one reason naming both lease epochs, under the successor's
/// epoch, so an auditor of the ledger sees that attempt too. The real round coordinator over a 3-silo in-process cluster.
/// </summary>
public sealed class CoordinatorTakeoverLedgerTests : IClassFixture<ThreeSiloCluster>, IDisposable
{
    private const string Federation = "takeover-ledger";
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    private readonly ThreeSiloCluster _cluster;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-takeover-ledger-").FullName;

    public CoordinatorTakeoverLedgerTests(ThreeSiloCluster cluster)
    {
        _cluster = cluster;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }

    [Fact]
    public async Task Start_RoundLeftOpenByThePreviousEpoch_AbortRecordedInTheLedgerWithBothEpochs()
    {
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), Federation, ["site-a", "site-b", "site-c"]);
        string data = Path.Combine(_dir, "aggregator");
        ILedgerGrain ledger = _cluster.Grains.GetGrain<ILedgerGrain>(Federation);

        // Epoch 3's coordinator opened round 1 and stopped; epoch 5's takes over.
        OpenRound(fed, data, """{"federation":"takeover-ledger","session":"5e55105e55105e55105e55105e55105e","cohort":["site-a","site-b","site-c"]}""");
        await RunCoordinatorAsync(fed, data, new TakeoverFence(epoch: 5, previous: 3));

        const string Reason = "coordinator takeover: the coordinator of lease epoch 3 stopped while the round was open; this coordinator took over at lease epoch 5";
        LedgerEntry entry = Assert.Single(await ledger.EntriesAsync().WaitAsync(Timeout), e => e.Round == 1);
        Assert.Equal((false, "5e55105e55105e55105e55105e55105e", Reason, 5L, (string?)null), (entry.Completed, entry.SessionId, entry.AbortReason, entry.Epoch, entry.SumSha256));
        using (AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(data)))
        {
            RoundRecord round = store.GetRound(1)!;
            Assert.Equal((RoundStatus.Aborted, Reason), (round.Status, round.AbortReason)); // the store and the ledger say the same
        }

        // A round whose completion reached the ledger but not the saved state (the old coordinator died in between): the
        // successor aborts it in its own records and leaves the ledger's completed outcome as it is (logged).
        await ledger.RecordAsync(new LedgerEntry(2, "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0", true, new string('a', 64), ["site-a", "site-b"], null, DateTimeOffset.UtcNow, 5)).WaitAsync(Timeout);
        OpenRound(fed, data, """{"federation":"takeover-ledger","session":"c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"}""");
        await RunCoordinatorAsync(fed, data, new TakeoverFence(epoch: 6, previous: 5));
        LedgerEntry completed = Assert.Single(await ledger.EntriesAsync().WaitAsync(Timeout), e => e.Round == 2);
        Assert.True(completed.Completed);

        // Nothing left open: a restart records nothing more.
        await RunCoordinatorAsync(fed, data, new TakeoverFence(epoch: 7, previous: 6));
        Assert.Equal([1L, 2L], (await ledger.EntriesAsync().WaitAsync(Timeout)).Select(e => e.Round).Order());
    }

    /// <summary>A round opened in the store at <paramref name="data"/> and left running (the coordinator stopped).</summary>
    private static void OpenRound(FrontFederation fed, string data, string configuration)
    {
        using AggregatorState state = AggregatorState.Open(new AggregatorOptions
        {
            Federation = Federation,
            KitDirectory = fed.Provisioned.AggregatorKitDirectory,
            DataDirectory = data,
            InitialModel = fed.InitialModelPath,
        });
        state.Store.BeginRound(configuration);
    }

    /// <summary>Starts the coordinator on <paramref name="data"/> under <paramref name="fence"/> on the cluster, waits for its start-up records, stops it.</summary>
    private async Task RunCoordinatorAsync(FrontFederation fed, string data, ICoordinatorFence fence)
    {
        Dictionary<string, string?> settings = FrontFederation.Flatten(fed.AggregatorSettings(data, 0, rounds: 5));
        settings["SecureFed:Federation"] = Federation;
        settings["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var servers = new ClusterRoundServerFactory(_cluster.Grains, 1024, NullLogger.Instance, localSilo: null, fence.Epoch);
        WebApplication app = AggregatorHost.Build(configuration, (Func<float[]>?)null, servers, fence, logging => logging.SetMinimumLevel(LogLevel.Warning));
        await using (app)
        {
            await app.StartAsync().WaitAsync(Timeout);
            RoundCoordinator coordinator = app.Services.GetRequiredService<RoundCoordinator>();
            await coordinator.InterruptedRecorded.WaitAsync(Timeout); // no agent comes: nothing else runs
            Assert.Null(coordinator.Failure);
            await app.StopAsync().WaitAsync(Timeout);
        }
    }

    /// <summary>A coordinator fence that is held throughout, at a given epoch, having taken over from <c>previous</c>.</summary>
    private sealed class TakeoverFence(long epoch, long previous) : ICoordinatorFence
    {
        public CancellationToken Lost => CancellationToken.None;

        public long Epoch => epoch;

        public long PreviousEpoch => previous;

        public void EnsureHeld()
        {
        }

        public Task CommitAsync(AggregatorState state, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task SaveAuditAsync(AggregatorState state, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
