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
            await RunCoordinatorAsync(fed, dataA, rounds: 2, fenceA, state => Assert.Equal(0, state.ServerRule.Steps));

            // A dies between rounds: its lease runs out in the database, nothing is released.
            await ExpireAsync(db, Federation);

            // Coordinator B takes over (epoch 2) from A's saved state and runs rounds 3 and 4.
            var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
            await using ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
                keeperB, new PostgresCoordinatorState(db, lease), dataB, NullLogger.Instance, CancellationToken.None).WaitAsync(Timeout);
            Assert.Equal(2, fenceB.Epoch);
            await RunCoordinatorAsync(fed, dataB, rounds: 4, fenceB, state =>
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
        var experiment = new ServerOptimizer(new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 0.05, Tau = 1e-3, Beta1 = 0.9, Beta2 = 0.99 });
        float[] expected = fed.InitialModel;
        for (int version = 1; version <= completed.Count; version++)
        {
            RoundRecord round = completed[version - 1];
            UpdateCodec codec = Codec(round);
            uint[] sum = new uint[codec.VectorLength];
            foreach (string site in round.Participants)
            {
                uint[] input = fed.Inputs[(site, round.Round)];
                for (int i = 0; i < sum.Length; i++)
                {
                    sum[i] += input[i];
                }
            }

            uint mask = codec.BitWidth == 32 ? uint.MaxValue : (1u << codec.BitWidth) - 1;
            for (int i = 0; i < sum.Length; i++)
            {
                sum[i] &= mask;
            }

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

    /// <summary>Runs the aggregator on <paramref name="data"/> under <paramref name="fence"/> until <paramref name="rounds"/> rounds completed, with the agents.</summary>
    private static async Task RunCoordinatorAsync(FrontFederation fed, string data, int rounds, ICoordinatorFence fence, Action<AggregatorState> atStart)
    {
        Dictionary<string, string?> settings = FrontFederation.Flatten(fed.AggregatorSettings(data, 0, rounds));
        settings["SecureFed:Federation"] = Federation;
        settings["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        settings["SecureFed:ServerOptimizer"] = "adam";
        settings["SecureFed:ServerLearningRate"] = "0.05";
        settings["SecureFed:ServerTau"] = "0.001";
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        WebApplication app = AggregatorHost.Build(configuration, (Func<float[]>?)null, roundServers: null, fence, logging => logging.SetMinimumLevel(LogLevel.Warning));
        await using (app)
        {
            atStart(app.Services.GetRequiredService<AggregatorState>());
            await app.StartAsync().WaitAsync(Timeout);
            RoundCoordinator coordinator = app.Services.GetRequiredService<RoundCoordinator>();
            fed.StartAgents(AggregatorHost.BoundAddress(app), "agents");
            await coordinator.Finished.WaitAsync(Timeout);
            Assert.Null(coordinator.Failure);
            await fed.AgentsFinishedAsync(Timeout);
            await fed.StopAgentsAsync();
            await app.StopAsync().WaitAsync(Timeout);
        }
    }

    /// <summary>The codec of <paramref name="round"/> as the coordinator planned it (checked against its recorded configuration).</summary>
    private static UpdateCodec Codec(RoundRecord round)
    {
        using JsonDocument config = JsonDocument.Parse(round.ConfigurationJson);
        int n = config.RootElement.GetProperty("cohort").GetArrayLength();
        int threshold = FederatedAveraging.Threshold(GraphPlanner.Plan(n, GraphPolicy.Complete), 0);
        EvaluationLayout evaluation = EvaluationLayout.Create(ModelSpec.Clinical(tiny: false).EntityTypes, 100_000);
        UpdateCodec codec = FederatedAveraging.PlanRound(FrontFederation.Parameters, 10, n, threshold, 0.5, 1000, evaluation).Codec;
        Assert.Equal(config.RootElement.GetProperty("vector_length").GetInt32(), codec.VectorLength);
        Assert.Equal(config.RootElement.GetProperty("bit_width").GetInt32(), codec.BitWidth);
        Assert.Equal(config.RootElement.GetProperty("scale").GetDouble(), codec.Scale);
        return codec;
    }
}
