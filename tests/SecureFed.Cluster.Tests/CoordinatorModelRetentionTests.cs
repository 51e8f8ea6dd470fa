using System.Security.Cryptography;
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
/// Model-version retention (<c>SecureFed:KeepModelVersions</c>) on the cluster's coordinator (a throw-away PostgreSQL):
/// the model rows mirror the round store saved with them, so a version the round store pruned loses its row in the
/// same fenced commit point, a stale epoch deletes nothing, and a takeover restores exactly the kept versions, bit for bit.
/// </summary>
public sealed class CoordinatorModelRetentionTests : IClassFixture<PostgresServer>, IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    private static readonly Dictionary<string, string?> KeepTwo = new() { ["SecureFed:KeepModelVersions"] = "2" };
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private readonly PostgresServer _postgres;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-model-retention-").FullName;

    public CoordinatorModelRetentionTests(PostgresServer postgres)
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
    public async Task CommitAsync_RoundStorePruned_RowsMirrorItStaleEpochDeletesNothingAndTakeoverRestoresOnlyTheKeptVersions()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Federation = "retention-rows";
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), Federation, Sites);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Federation);
        AggregatorOptions optionsA = Options(fed, "silo-a-data");
        AggregatorOptions optionsB = Options(fed, "silo-b-data");
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(Timeout);
        var written = new Dictionary<long, byte[]>();
        try
        {
            using (AggregatorState a = AggregatorState.Open(optionsA))
            {
                written[0] = a.Store.LoadModel(0)!;
                await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(Timeout);

                // Rounds 1 and 2 saved as before retention (every version kept), then KeepModelVersions = 2 from round 3.
                for (int v = 1; v <= 4; v++)
                {
                    long round = a.Store.BeginRound($$"""{"model_version":{{v - 1}}}""");
                    byte[] bytes = ModelState.ToBytes([.. fed.InitialModel.Select((x, i) => x + (v * 0.01f) + (i % 7 * 1e-4f))]);
                    written[v] = bytes;
                    a.Store.CompleteRoundWithModel(round, v, bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)), ["site-a", "site-b"], moments: null, keepModelVersions: v <= 2 ? 0 : 2);
                    await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(Timeout);
                    long[] expected = v <= 2 ? [.. Enumerable.Range(0, v + 1).Select(i => (long)i)] : [v - 1, v];
                    Assert.Equal(expected, a.Store.ListModels().Select(m => m.Version));
                    Assert.Equal(expected, (await ModelRowsAsync(db, Federation)).Select(r => r.Version));
                }

                // A round in flight (base version 4) when A dies.
                Assert.Equal(5, a.Store.BeginRound("""{"model_version":4}"""));
                await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(Timeout);
            }

            Assert.Equal([(3L, 1L), (4L, 1L)], await ModelRowsAsync(db, Federation));

            // B takes over: it restores versions 3 and 4 only (the database holds no other), bit for bit.
            await TakeOverAsync(db, lease, "silo-b", optionsB);
            using (AggregatorStore original = AggregatorStore.Open(AggregatorState.StorePath(optionsA.DataDirectory)))
            using (AggregatorStore restored = AggregatorStore.Open(AggregatorState.StorePath(optionsB.DataDirectory)))
            {
                Assert.Equal(original.ListModels(), restored.ListModels());
                Assert.Equal([3L, 4L], restored.ListModels().Select(m => m.Version));
                Assert.Empty(restored.ListModelsWithoutBytes());
                Assert.Equal(written[3], restored.LoadModel(3));
                Assert.Equal(written[4], restored.LoadModel(4));
                Assert.Null(restored.LoadModel(2));
                Assert.Equal(original.ListRounds().Select(r => (r.Round, r.Status, r.ModelSha256)), restored.ListRounds().Select(r => (r.Round, r.Status, r.ModelSha256)));
                Assert.Empty(restored.QuickCheck());
            }

            using (AggregatorState b = AggregatorState.Open(optionsB))
            {
                Assert.Equal(4, b.Model.Version);
                Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(written[4])), b.Model.Sha256);
            }

            // A, now stale, completes round 5 keeping one version and tries to save: refused, and no row is deleted.
            using (AggregatorState a = AggregatorState.Open(optionsA))
            {
                byte[] bytes = ModelState.ToBytes([.. fed.InitialModel.Select(x => x * 2)]);
                IReadOnlyList<ModelRecord> pruned = a.Store.CompleteRoundWithModel(5, 5, bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)), ["site-a"], moments: null, keepModelVersions: 1);
                Assert.Equal([3L, 4L], pruned.Select(m => m.Version));
                await Assert.ThrowsAsync<CoordinatorLeaseLostException>(() => fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(Timeout));
            }

            Assert.Equal([(3L, 1L), (4L, 1L)], await ModelRowsAsync(db, Federation));
        }
        finally
        {
            await fenceA.DisposeAsync();
        }
    }

    [SkippableFact]
    public async Task Rounds_KeepTwoAcrossACoordinatorTakeover_OnlyTheNewestTwoKeptBitForBitAuditedAndTheLogVerifies()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Federation = "retention-takeover";
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed-rounds"), Federation, Sites);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Federation);
        string dataA = Path.Combine(_dir, "rounds-a-data");
        string dataB = Path.Combine(_dir, "rounds-b-data");

        // Coordinator A: rounds 1 to 3 with adam and KeepModelVersions = 2, then it dies between rounds.
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), dataA, NullLogger.Instance, CancellationToken.None).WaitAsync(Timeout);
        try
        {
            await AdamCoordinatorRuns.RunAsync(fed, dataA, rounds: 3, fenceA, KeepTwo);
            Assert.Equal([(2L, 1L), (3L, 1L)], await ModelRowsAsync(db, Federation));
            await ExpireAsync(db, Federation);

            // Coordinator B restores versions 2 and 3 (with the adam moments of 3) and runs rounds 4 and 5.
            var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
            await using ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
                keeperB, new PostgresCoordinatorState(db, lease), dataB, NullLogger.Instance, CancellationToken.None).WaitAsync(Timeout);
            using (AggregatorStore restored = AggregatorStore.Open(AggregatorState.StorePath(dataB)))
            {
                Assert.Equal([2L, 3L], restored.ListModels().Select(m => m.Version));
                Assert.Equal(3, restored.LoadServerOptimizer()!.ModelVersion);
            }

            await AdamCoordinatorRuns.RunAsync(fed, dataB, rounds: 5, fenceB, KeepTwo);
            Assert.Equal([(4L, 2L), (5L, 2L)], await ModelRowsAsync(db, Federation));
        }
        finally
        {
            await fenceA.DisposeAsync();
        }

        // The kept versions are bit for bit what one uninterrupted adam rule computes on the same sums.
        using AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(dataB));
        Assert.Equal([4L, 5L], store.ListModels().Select(m => m.Version));
        IReadOnlyList<RoundRecord> completed = [.. store.ListRounds().Where(r => r.Status == RoundStatus.Completed)];
        Assert.Equal(5, completed.Count);
        var experiment = new ServerOptimizer(AdamCoordinatorRuns.Rule);
        float[] expected = fed.InitialModel;
        var digests = new Dictionary<long, string> { [0] = ModelState.Digest(expected) };
        for (int version = 1; version <= completed.Count; version++)
        {
            expected = experiment.Step(expected, FederatedAveraging.AverageUpdate(AdamCoordinatorRuns.Codec(completed[version - 1]), AdamCoordinatorRuns.Sum(fed, completed[version - 1]), out _));
            digests[version] = ModelState.Digest(expected);
            Assert.Equal(version >= 4 ? ModelState.ToBytes(expected) : null, store.LoadModel(version));
        }

        // Each prune is audited with the versions and digests it deleted; the continued log verifies end to end.
        List<AuditLine> audit = AuditLine.Read(AggregatorState.AuditDirectory(dataB));
        AuditLine[] prunes = [.. audit.Where(l => l.Type == AuditEvents.ModelsPruned)];
        Assert.Equal([2L, 3L, 4L, 5L], prunes.Select(l => l.Number("model_version")));
        Assert.Equal(completed.Skip(1).Select(r => r.Round), prunes.Select(l => l.Number("round")));
        Assert.All(prunes, l => Assert.Equal(2, l.Number("keep")));
        Dictionary<string, string>[] pruned = [.. prunes.Select(l => l.Fields.GetProperty("pruned").Deserialize<Dictionary<string, string>>()!)];
        Assert.Equal(new Dictionary<string, string> { ["0"] = digests[0] }, pruned[0]);
        Assert.Equal(new Dictionary<string, string> { ["1"] = digests[1] }, pruned[1]);
        Assert.Equal(new Dictionary<string, string> { ["2"] = digests[2] }, pruned[2]);
        Assert.Equal(new Dictionary<string, string> { ["3"] = digests[3] }, pruned[3]);
        AuditVerification verification = AuditVerifier.Verify(AggregatorState.AuditDirectory(dataB));
        Assert.True(verification.Ok, string.Join("; ", verification.Problems));
    }

    private AggregatorOptions Options(FrontFederation federation, string data) => new()
    {
        Federation = federation.Federation,
        KitDirectory = federation.Provisioned.AggregatorKitDirectory,
        DataDirectory = Path.Combine(_dir, data),
        InitialModel = federation.InitialModelPath,
    };
}
