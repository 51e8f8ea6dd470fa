using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Cluster.Bench;
using SecureFed.Cluster.Lease;
using Xunit.Abstractions;

using static SecureFed.Cluster.Tests.CoordinatorStateTesting;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The coordinator's model versions in PostgreSQL (a throw-away server): one row per version, sent once under the
/// lease's epoch, the round store saved without model bytes; a takeover rebuilds every version bit for bit, and refuses
/// (naming the version, leaving the local data directory as it was) a row that is missing or corrupt. Not run in
/// parallel with other classes: it measures this process's managed allocations during a commit point and a takeover.
/// </summary>
[Collection(nameof(CoordinatorModelRowsTests))]
public sealed class CoordinatorModelRowsTests : IClassFixture<PostgresServer>, IDisposable
{
    private readonly PostgresServer _postgres;
    private readonly ITestOutputHelper _output;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "securefed-model-rows-" + Guid.NewGuid().ToString("N"));

    public CoordinatorModelRowsTests(PostgresServer postgres, ITestOutputHelper output)
    {
        _postgres = postgres;
        _output = output;
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [SkippableFact]
    public async Task CommitAsync_TwoRoundsTwoCommitPoints_EachModelVersionSentOnceAndTakeoverRestoresEveryVersionBitForBit()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const int Parameters = 1_000_000; // 4 000 000 bytes per model version
        const long ModelBytes = Parameters * sizeof(float);
        await using var federation = new FrontFederation(_directory, "model-rows", ["site-a", "site-b", "site-c"]);
        string initialModel = Path.Combine(_directory, "large-initial.model");
        File.WriteAllBytes(initialModel, ModelState.ToBytes([.. Enumerable.Range(0, Parameters).Select(i => (float)Math.Sin(i))]));
        string pool = "model-rows-" + Guid.NewGuid().ToString("N");
        await using NpgsqlDataSource db = new NpgsqlDataSourceBuilder(_postgres.ConnectionString) { Name = pool }.Build();
        using var sent = new NpgsqlBytesWritten(pool);
        var lease = new PostgresCoordinatorLease(db, "model-rows");
        AggregatorOptions optionsA = Options(federation, "silo-a-data", initialModel);
        AggregatorOptions optionsB = Options(federation, "silo-b-data", initialModel);
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);
        var perCommitPoint = new List<long>();
        long wholeStoreBytes;
        long commitAllocated = 0;
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            // Start-up (version 0), then two rounds with a commit point each (versions 1 and 2), then one without a model.
            perCommitPoint.Add(await CommitAsync(fenceA, a, sent));
            for (int i = 1; i <= 2; i++)
            {
                long round = a.Store.BeginRound("{}");
                a.Store.RecordStage(round, "MaskedInput", ["site-a", "site-b"]);
                byte[] bytes = ModelState.ToBytes([.. Enumerable.Range(0, Parameters).Select(p => (float)Math.Sin(p) + (i * 0.125f))]);
                a.Store.CompleteRoundWithModel(round, i, bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)), ["site-a", "site-b"]);
                long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
                perCommitPoint.Add(await CommitAsync(fenceA, a, sent));
                commitAllocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            }

            Assert.Equal(3, a.Store.BeginRound("{}"));
            perCommitPoint.Add(await CommitAsync(fenceA, a, sent));
            string whole = Path.Combine(_directory, "whole.db");
            a.Store.SnapshotTo(whole); // what each commit point sent before model rows
            wholeStoreBytes = new FileInfo(whole).Length;
        }

        _output.WriteLine($"bytes sent to PostgreSQL per commit point (start-up, round 1, round 2, round 3 opened), {ModelBytes} bytes per model version: {string.Join(", ", perCommitPoint)}; the whole round store after 2 rounds: {wholeStoreBytes} bytes");
        _output.WriteLine($"managed bytes allocated by the process during round 2's commit point: {commitAllocated}");

        // Each model version went once: a commit point after a round sends that round's model and a small rest.
        Assert.All(perCommitPoint.Take(3), b => Assert.InRange(b, ModelBytes, ModelBytes + (ModelBytes / 4)));
        Assert.InRange(perCommitPoint[3], 1, ModelBytes / 10);
        Assert.True(wholeStoreBytes > 3 * ModelBytes); // whole, the second round's commit point would have sent every version
        Assert.Equal([(0L, 1L), (1L, 1L), (2L, 1L)], await ModelRowsAsync(db, "model-rows"));

        // Silo B takes over: every model version and round record equal to A's, bit for bit.
        await ExpireAsync(db, "model-rows");
        var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
        long beforeTakeover = GC.GetTotalAllocatedBytes(precise: true);
        await using ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
            keeperB, new PostgresCoordinatorState(db, lease), optionsB.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);
        long takeoverAllocated = GC.GetTotalAllocatedBytes(precise: true) - beforeTakeover;
        _output.WriteLine($"managed bytes allocated by the process during the takeover (3 model versions restored): {takeoverAllocated}");

        // No model version passed through a managed array of its size, neither sent nor restored (the whole process's
        // allocations stay under one model's bytes, while the takeover wrote three).
        Assert.InRange(commitAllocated, 1, ModelBytes - 1);
        Assert.InRange(takeoverAllocated, 1, ModelBytes - 1);
        using (AggregatorStore original = AggregatorStore.Open(Path.Combine(optionsA.DataDirectory, CoordinatorSnapshot.RoundStoreName)))
        using (AggregatorStore restored = AggregatorStore.Open(Path.Combine(optionsB.DataDirectory, CoordinatorSnapshot.RoundStoreName)))
        {
            Assert.Equal(original.ListModels(), restored.ListModels());
            Assert.Empty(restored.ListModelsWithoutBytes());
            foreach (ModelRecord model in original.ListModels())
            {
                Assert.Equal(original.LoadModel(model.Version), restored.LoadModel(model.Version));
            }

            Assert.Equal(Describe(original.ListRounds()), Describe(restored.ListRounds()));
            Assert.Equal(original.ListLedger(), restored.ListLedger());
            Assert.Empty(restored.QuickCheck());
        }

        // B's first commit point sends no model version again (the database holds them all).
        using (AggregatorState b = AggregatorState.Open(optionsB))
        {
            Assert.Equal(2, b.Model.Version);
            Assert.Equal(1, b.Store.AbortInterruptedRounds("the coordinator stopped while the round was open"));
            long afterTakeover = await CommitAsync(fenceB, b, sent);
            _output.WriteLine($"bytes sent by the successor's first commit point: {afterTakeover}");
            Assert.InRange(afterTakeover, 1, ModelBytes / 10);
        }

        Assert.Equal([(0L, 1L), (1L, 1L), (2L, 1L)], await ModelRowsAsync(db, "model-rows"));
    }

    [SkippableFact]
    public async Task TakeOver_ModelRowCorruptOrMissing_RefusedNamingTheVersionAndLocalDataUntouched()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var federation = new FrontFederation(_directory, "model-rows-bad", ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "model-rows-bad");
        AggregatorOptions optionsA = Options(federation, "silo-a-data", federation.InitialModelPath);
        AggregatorOptions optionsB = Options(federation, "silo-b-data", federation.InitialModelPath);
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        await using (ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit))
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            for (int i = 1; i <= 2; i++)
            {
                long round = a.Store.BeginRound("{}");
                byte[] bytes = ModelState.ToBytes([.. federation.InitialModel.Select(v => v + i)]);
                a.Store.CompleteRoundWithModel(round, i, bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)), ["site-a"]);
                await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            }
        }

        // B's own older state, which a failed restore must leave exactly as it was.
        Directory.CreateDirectory(Path.Combine(optionsB.DataDirectory, "audit"));
        File.WriteAllText(Path.Combine(optionsB.DataDirectory, "aggregator.db"), "B's own round store");
        File.WriteAllText(Path.Combine(optionsB.DataDirectory, "audit", "audit.jsonl"), "B's own log\n");
        Dictionary<string, string> before = Contents(optionsB.DataDirectory);

        // A bit flipped in version 2's row: refused, naming it.
        await ExecuteAsync(db, "UPDATE securefed_coordinator_models SET bytes = set_byte(bytes, 100, get_byte(bytes, 100) # 1) WHERE federation = 'model-rows-bad' AND version = 2");
        var corrupt = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-b", optionsB));
        Assert.Contains("model version 2 of federation 'model-rows-bad' in the cluster's database (table securefed_coordinator_models) is corrupt", corrupt.Message, StringComparison.Ordinal);
        Assert.Contains("hash to SHA-256", corrupt.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);

        // Version 1's row gone: refused, naming it.
        await ExecuteAsync(db, "DELETE FROM securefed_coordinator_models WHERE federation = 'model-rows-bad' AND version = 1");
        var missing = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-c", optionsB));
        Assert.Contains("model version 1 (SHA-256 ", missing.Message, StringComparison.Ordinal);
        Assert.Contains("is missing from the cluster's database (table securefed_coordinator_models)", missing.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);
    }

    [SkippableFact]
    public async Task SaveAsync_StaleEpochOrCorruptLocalModel_NoModelRowWritten()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "model-rows-stale");
        var state = new PostgresCoordinatorState(db, lease);
        long stale = (await lease.TryAcquireAsync("silo-old", TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(WaitLimit))!.Value;
        await ExpireAsync(db, "model-rows-stale");
        long current = (await lease.TryAcquireAsync("silo-new", TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(WaitLimit))!.Value;
        using AggregatorStore store = AggregatorStore.Open(Path.Combine(_directory, "store", "aggregator.db"));
        byte[] bytes = new byte[200_000];
        new Random(5).NextBytes(bytes);
        store.SaveModel(0, 0, bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)));
        var small = new Dictionary<string, byte[]>(StringComparer.Ordinal) { ["audit/audit.jsonl"] = "{}\n"u8.ToArray() };
        var none = new Dictionary<string, string>(StringComparer.Ordinal);
        int opened = 0;
        Stream Open(long version)
        {
            opened++;
            return store.OpenModel(version);
        }

        // The old holder's save (epoch 1) is refused by the fence before any model is opened or sent.
        var lost = await Assert.ThrowsAsync<CoordinatorLeaseLostException>(() =>
            state.SaveAsync(small, none, store.ListModels(), Open, "silo-old", stale, CancellationToken.None).WaitAsync(WaitLimit));
        Assert.Contains($"this writer holds epoch {stale}", lost.Message, StringComparison.Ordinal);
        Assert.Equal(0, opened);
        Assert.Empty(await ModelRowsAsync(db, "model-rows-stale"));

        // Local bytes that are not the recorded model (same length): the database's hash refuses them, nothing is written.
        byte[] other = (byte[])bytes.Clone();
        other[7] ^= 0x80;
        var wrong = await Assert.ThrowsAsync<InvalidDataException>(() =>
            state.SaveAsync(small, none, store.ListModels(), _ => new MemoryStream(other), "silo-new", current, CancellationToken.None).WaitAsync(WaitLimit));
        Assert.Contains("model version 0 of the coordinator's round store hashes to SHA-256 ", wrong.Message, StringComparison.Ordinal);
        Assert.Empty(await ModelRowsAsync(db, "model-rows-stale"));
        Assert.Empty(await new PostgresCoordinatorState(db, lease).LoadAsync(CancellationToken.None).WaitAsync(WaitLimit));

        // The current holder's save writes it, once, under its epoch.
        CoordinatorSaveResult first = await state.SaveAsync(small, none, store.ListModels(), Open, "silo-new", current, CancellationToken.None).WaitAsync(WaitLimit);
        CoordinatorSaveResult again = await state.SaveAsync(small, none, store.ListModels(), Open, "silo-new", current, CancellationToken.None).WaitAsync(WaitLimit);
        Assert.Equal(new CoordinatorSaveResult(1, 1, bytes.Length), first);
        Assert.Equal(new CoordinatorSaveResult(0, 0, 0), again);
        Assert.Equal(1, opened);
        Assert.Equal([(0L, current)], await ModelRowsAsync(db, "model-rows-stale"));
    }

    [SkippableFact]
    public async Task TakeOver_RoundStoreSavedWholeByAnEarlierVersion_RestoredWithEveryModelAndNoModelRows()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var federation = new FrontFederation(_directory, "model-rows-whole", ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "model-rows-whole");
        AggregatorOptions optionsA = Options(federation, "silo-a-data", federation.InitialModelPath);
        AggregatorOptions optionsB = Options(federation, "silo-b-data", federation.InitialModelPath);
        long epoch = (await lease.TryAcquireAsync("silo-a", TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(WaitLimit))!.Value;
        byte[] model;
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            long round = a.Store.BeginRound("{}");
            model = ModelState.ToBytes([.. federation.InitialModel.Select(v => v * 3)]);
            a.Store.CompleteRoundWithModel(round, 1, model, Convert.ToHexStringLower(SHA256.HashData(model)), ["site-a"]);

            // What a coordinator before model rows saved: the round store whole, model bytes inside.
            await new PostgresCoordinatorState(db, lease).SaveAsync(CoordinatorSnapshot.Take(a), "silo-a", epoch, CancellationToken.None).WaitAsync(WaitLimit);
        }

        await TakeOverAsync(db, lease, "silo-b", optionsB);

        using AggregatorStore restored = AggregatorStore.Open(Path.Combine(optionsB.DataDirectory, CoordinatorSnapshot.RoundStoreName));
        Assert.Equal([0L, 1L], restored.ListModels().Select(m => m.Version));
        Assert.Empty(restored.ListModelsWithoutBytes());
        Assert.Equal(model, restored.LoadModel(1));
        Assert.Empty(await ModelRowsAsync(db, "model-rows-whole"));
    }

    private static async Task<long> CommitAsync(ClusterCoordinatorFence fence, AggregatorState state, NpgsqlBytesWritten sent)
    {
        long before = sent.Total;
        await fence.CommitAsync(state, CancellationToken.None).WaitAsync(WaitLimit);
        return sent.Total - before;
    }

    private static string[] Describe(IReadOnlyList<RoundRecord> rounds) =>
        [.. rounds.Select(r => string.Join("|", r.Round, r.Status, r.ConfigurationJson, r.StartedUtc.ToString("O"), r.EndedUtc?.ToString("O"), r.ModelSha256, r.AbortReason,
            string.Join(",", r.Participants), string.Join(";", r.Stages.Select(s => $"{s.Stage}:{string.Join(",", s.Participants)}:{s.RecordedUtc:O}"))))];

    private AggregatorOptions Options(FrontFederation federation, string data, string initialModel) => new()
    {
        Federation = federation.Federation,
        KitDirectory = federation.Provisioned.AggregatorKitDirectory,
        DataDirectory = Path.Combine(_directory, data),
        InitialModel = initialModel,
    };
}

/// <summary>
/// The collection of <see cref="CoordinatorModelRowsTests"/>, run alone. A class of its own: declared on the test class
/// itself, xunit never disposed the class's <see cref="PostgresServer"/> (the throw-away server outlived the run).
/// </summary>
[CollectionDefinition(nameof(CoordinatorModelRowsTests), DisableParallelization = true)]
public sealed class CoordinatorModelRowsCollection;
