using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Agent;
using SecureFed.Audit;
using SecureFed.Cluster.Lease;
using SecureFed.Protocol;

using static SecureFed.Cluster.Tests.CoordinatorStateTesting;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// Server Adam on the cluster's coordinator, end to end in one process: the real round coordinator under the cluster's
/// lease and saved state (a throw-away PostgreSQL), real agents over mTLS. Coordinator A runs rounds 1 and 2 and dies
/// between rounds (its lease runs out without a release); coordinator B takes the lease over, restores A's state — the
/// adam moments of model version 2 among it — and runs rounds 3 and 4. Every model version must be bit for bit what one
/// uninterrupted optimizer computes on the same sums (<see cref="FederatedAveraging.AverageUpdate"/> then
/// <see cref="ServerOptimizer.Step"/>), as must the moments B saved last.
/// </summary>
public sealed class CoordinatorAdamTakeoverTests : IClassFixture<PostgresServer>, IDisposable
{
    private const string Federation = "adam-takeover";
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private readonly PostgresServer _postgres;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-adam-takeover-").FullName;

    public CoordinatorAdamTakeoverTests(PostgresServer postgres)
    {
        _postgres = postgres;
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

    [SkippableFact]
    public async Task Rounds_CoordinatorTakeoverBetweenAdamRounds_ModelsEqualTheUninterruptedRuleBitForBit()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), Federation, Sites);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Federation);
        string dataA = Path.Combine(_dir, "silo-a-data");
        string dataB = Path.Combine(_dir, "silo-b-data");

        // Coordinator A: rounds 1 and 2 under the lease (epoch 1).
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), dataA, NullLogger.Instance, CancellationToken.None).WaitAsync(Timeout);
        try
        {
            Assert.Equal(1, fenceA.Epoch);
            await AdamCoordinatorRuns.RunAsync(fed, dataA, rounds: 2, fenceA, atStart: state => Assert.Equal(0, state.ServerRule.Steps));

            // A dies between rounds: its lease runs out in the database, nothing is released.
            await ExpireAsync(db, Federation);

            // Coordinator B takes over (epoch 2) from A's saved state and runs rounds 3 and 4.
            var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
            await using ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
                keeperB, new PostgresCoordinatorState(db, lease), dataB, NullLogger.Instance, CancellationToken.None).WaitAsync(Timeout);
            Assert.Equal(2, fenceB.Epoch);
            await AdamCoordinatorRuns.RunAsync(fed, dataB, rounds: 4, fenceB, atStart: state =>
            {
                Assert.Equal(2, state.ServerRule.Steps);
                Assert.Contains("adam moments restored from model version 2 after 2 steps", state.ServerRule.History, StringComparison.Ordinal);
            });
        }
        finally
        {
            await fenceA.DisposeAsync();
        }

        // Replay the completed rounds' sums (the contributors' privatized inputs; the masks cancel) through one
        // uninterrupted optimizer, and compare every model version B's round store holds, A's two included.
        using AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(dataB));
        IReadOnlyList<RoundRecord> completed = [.. store.ListRounds().Where(r => r.Status == RoundStatus.Completed)];
        Assert.Equal(4, completed.Count);
        var experiment = new ServerOptimizer(AdamCoordinatorRuns.Rule);
        float[] expected = fed.InitialModel;
        for (int version = 1; version <= completed.Count; version++)
        {
            RoundRecord round = completed[version - 1];
            UpdateCodec codec = AdamCoordinatorRuns.Codec(round);
            uint[] sum = AdamCoordinatorRuns.Sum(fed, round);
            expected = experiment.Step(expected, FederatedAveraging.AverageUpdate(codec, sum, out _));
            Assert.Equal(ModelState.ToBytes(expected), store.LoadModel(version));
        }

        Assert.NotEqual(ModelState.ToBytes(fed.InitialModel), ModelState.ToBytes(expected));
        SavedServerOptimizer saved = store.LoadServerOptimizer()!;
        Assert.Equal((4L, "adam", 4L), (saved.ModelVersion, saved.Kind, saved.Steps));
        Assert.Equal(experiment.FirstMoment.ToArray(), saved.First);
        Assert.Equal(experiment.SecondMoment.ToArray(), saved.Second);
        Assert.True(AuditVerifier.Verify(AggregatorState.AuditDirectory(dataB)).Ok);
    }
}
