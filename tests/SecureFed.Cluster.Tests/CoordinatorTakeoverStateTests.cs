using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Cluster.Lease;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The coordinator's state in PostgreSQL (a throw-away server): saved at commit points under the lease's epoch, restored
/// by the silo that takes the lease over, refused from a coordinator that lost it; one audit chain per aggregator identity.
/// </summary>
public sealed class CoordinatorTakeoverStateTests : IClassFixture<PostgresServer>, IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private static readonly LeaseTerms Terms = new(TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5));
    private readonly PostgresServer _postgres;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "securefed-takeover-" + Guid.NewGuid().ToString("N"));

    public CoordinatorTakeoverStateTests(PostgresServer postgres)
    {
        _postgres = postgres;
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [SkippableFact]
    public async Task TakeOver_AfterCompletedAndInFlightRound_NothingLostInFlightAbortedOneAuditChainAndStaleWriterRefused()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var federation = new FrontFederation(_directory, "takeover", ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "takeover");
        AggregatorOptions optionsA = Options(federation, "silo-a-data");
        AggregatorOptions optionsB = Options(federation, "silo-b-data");

        // Silo A: first coordinator (nothing saved yet), completes round 1, opens round 2 and "dies" in it.
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal(1, fenceA.Epoch);
        Assert.Equal(0, fenceA.PreviousEpoch); // nothing saved before it
        string modelSha;
        double spent;
        string checkpointOfA = Path.Combine(_directory, "a-checkpoint");
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(Timeout);
            long round1 = a.Store.BeginRound("{}");
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(Timeout);
            float[] next = [.. federation.InitialModel.Select(v => v + 0.25f)];
            byte[] bytes = ModelState.ToBytes(next);
            modelSha = Convert.ToHexStringLower(SHA256.HashData(bytes));
            a.Store.CompleteRoundWithModel(round1, 1, bytes, modelSha, ["site-a", "site-b"]);
            spent = a.Budget.Record(round1, 0.05, 1e-5);
            a.Audit.Append(AuditEvents.RoundCompleted, f => f.Add("round", round1));
            a.Audit.Checkpoint();
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(Timeout);
            Assert.Equal(2, a.Store.BeginRound("{}"));
            a.Audit.Append(AuditEvents.RoundOpened, f => f.Add("round", 2));
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(Timeout);
            File.Copy(Path.Combine(AggregatorState.AuditDirectory(optionsA.DataDirectory), AuditLog.LatestCheckpointFileName), checkpointOfA);

            // A stops renewing (killed, paused): its lease expires in the database, and silo B takes it over.
            await ExpireAsync(db, "takeover");
            var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
            Directory.CreateDirectory(optionsB.DataDirectory);
            File.WriteAllText(Path.Combine(optionsB.DataDirectory, "stale.txt"), "B's own older state");
            await using ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
                keeperB, new PostgresCoordinatorState(db, lease), optionsB.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(Timeout);
            Assert.Equal(2, fenceB.Epoch);
            Assert.Equal(1, fenceB.PreviousEpoch); // the epoch that saved the round store B restored
            Assert.False(File.Exists(Path.Combine(optionsB.DataDirectory, "stale.txt"))); // moved aside, not mixed in
            Assert.Single(Directory.GetDirectories(_directory, "silo-b-data.superseded-2-*"));

            // A, still running, reaches its next commit point: refused (locally or by the database's fence), nothing written.
            a.Audit.Append(AuditEvents.RoundAborted, f => f.Add("round", 2).Add("reason", "a late write of the old coordinator"));
            await Assert.ThrowsAsync<CoordinatorLeaseLostException>(() => fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(Timeout));
            await Assert.ThrowsAsync<CoordinatorLeaseLostException>(() =>
                new PostgresCoordinatorState(db, lease).SaveAsync(CoordinatorSnapshot.Take(a), "silo-a", 1, CancellationToken.None).WaitAsync(Timeout));

            // B continues from what A committed: round 1 and its model and ledger entry, round 2 still open (then aborted).
            using AggregatorState b = AggregatorState.Open(optionsB);
            Assert.Equal(1, b.Model.Version);
            Assert.Equal(modelSha, b.Model.Sha256);
            Assert.Equal(RoundStatus.Completed, b.Store.GetRound(1)!.Status);
            Assert.Equal(RoundStatus.Running, b.Store.GetRound(2)!.Status);
            Assert.Equal(1, b.Store.AbortInterruptedRounds("the coordinator stopped while the round was open"));
            Assert.Equal(spent, b.Budget.Spent(1e-5), 12);
            b.Audit.Append(AuditEvents.RoundAborted, f => f.Add("rounds", 1).Add("reason", "the coordinator stopped while the round was open"));
            b.Audit.Checkpoint();
            await fenceB.CommitAsync(b, CancellationToken.None).WaitAsync(Timeout);
            Assert.Equal(3, b.Store.BeginRound("{}"));
        }

        // One log for the aggregator identity: B's log verifies end to end and extends A's last checkpoint (no fork), and
        // A's late line is in neither the database nor B's log.
        string auditB = AggregatorState.AuditDirectory(optionsB.DataDirectory);
        AuditVerification verified = AuditVerifier.Verify(auditB, previousCheckpoint: checkpointOfA);
        Assert.True(verified.Ok, verified.FirstProblem);
        string[] lines = File.ReadAllLines(Path.Combine(auditB, AuditLog.LogFileName));
        Assert.DoesNotContain(lines, l => l.Contains("a late write of the old coordinator", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("the coordinator stopped while the round was open", StringComparison.Ordinal));
        // The saved log is its rows (the whole file is no longer saved): B's lines, not A's late one.
        var saved = new PostgresCoordinatorState(db, lease);
        Assert.DoesNotContain(CoordinatorSnapshot.AuditLogName, (await saved.LoadAsync(CancellationToken.None).WaitAsync(Timeout)).Keys);
        string savedLog = Path.Combine(_directory, "saved-audit.jsonl");
        await saved.RestoreAuditAsync(savedLog, CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal(lines, File.ReadAllLines(savedLog));
    }

    [SkippableFact]
    public async Task SaveAsync_RoundStoreOnDisk_StreamedLoadedBitForBitAndSentOnlyWhenChanged()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "streamed");
        long epoch = (await lease.TryAcquireAsync("silo-s", TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(Timeout))!.Value;
        var state = new PostgresCoordinatorState(db, lease);
        Directory.CreateDirectory(_directory);
        string onDisk = Path.Combine(_directory, "store-copy.db");
        byte[] large = new byte[3_000_001]; // spans many of Npgsql's write buffers
        new Random(17).NextBytes(large);
        await File.WriteAllBytesAsync(onDisk, large);
        var small = new Dictionary<string, byte[]>(StringComparer.Ordinal) { ["audit/audit.jsonl"] = "{}\n"u8.ToArray() };
        var disk = new Dictionary<string, string>(StringComparer.Ordinal) { [CoordinatorSnapshot.RoundStoreName] = onDisk };

        int first = await state.SaveAsync(small, disk, "silo-s", epoch, CancellationToken.None).WaitAsync(Timeout);
        int unchanged = await state.SaveAsync(small, disk, "silo-s", epoch, CancellationToken.None).WaitAsync(Timeout);
        large[1_500_000] ^= 0x40;
        await File.WriteAllBytesAsync(onDisk, large);
        int changed = await state.SaveAsync(small, disk, "silo-s", epoch, CancellationToken.None).WaitAsync(Timeout);
        IReadOnlyDictionary<string, byte[]> loaded = await new PostgresCoordinatorState(db, lease).LoadAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal((2, 0, 1), (first, unchanged, changed));
        Assert.Equal(large, loaded[CoordinatorSnapshot.RoundStoreName]);
        Assert.Equal(small["audit/audit.jsonl"], loaded["audit/audit.jsonl"]);
        Assert.True(File.Exists(onDisk)); // the caller's file
        await Assert.ThrowsAsync<ArgumentException>(() => state.SaveAsync(
            new Dictionary<string, byte[]>(StringComparer.Ordinal) { [CoordinatorSnapshot.RoundStoreName] = [1] }, disk, "silo-s", epoch, CancellationToken.None));
    }

    [Fact]
    public async Task Take_LineBeingAppended_CutAtLastCompleteLineAndRestoredStateOpens()
    {
        await using var federation = new FrontFederation(_directory, "snapshot", ["site-a", "site-b", "site-c"]);
        AggregatorOptions options = Options(federation, "snapshot-data");
        IReadOnlyDictionary<string, byte[]> files;
        using (AggregatorState state = AggregatorState.Open(options))
        {
            long round = state.Store.BeginRound("{}");
            byte[] bytes = ModelState.ToBytes([.. federation.InitialModel.Select(v => v * 2)]);
            state.Store.CompleteRoundWithModel(round, 1, bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)), ["site-a"]);
            state.Budget.Record(round, 0.05, 1e-5);
            state.Audit.Checkpoint();

            // Another writer is half-way through a line of each append-only file when the snapshot is taken.
            File.AppendAllText(AggregatorState.PrivacyLedgerPath(options.DataDirectory), "{\"half\":");
            File.AppendAllText(Path.Combine(AggregatorState.AuditDirectory(options.DataDirectory), AuditLog.LogFileName), "{\"half\":");
            files = CoordinatorSnapshot.Take(state);
        }

        Assert.EndsWith("\n", System.Text.Encoding.UTF8.GetString(files["privacy-ledger.jsonl"]), StringComparison.Ordinal);
        Assert.EndsWith("\n", System.Text.Encoding.UTF8.GetString(files["audit/audit.jsonl"]), StringComparison.Ordinal);
        Assert.Contains("audit/verifier.key", files.Keys);
        Assert.Contains(files.Keys, k => k.StartsWith("audit/checkpoints/", StringComparison.Ordinal));

        AggregatorOptions restored = Options(federation, "snapshot-restored");
        Assert.Null(CoordinatorSnapshot.Restore(files, restored.DataDirectory, 2)); // nothing there before: nothing moved aside
        using (AggregatorState state = AggregatorState.Open(restored))
        {
            Assert.Equal(1, state.Model.Version);
            Assert.True(state.Budget.Spent(1e-5) > 0);
        }

        Assert.True(AuditVerifier.Verify(AggregatorState.AuditDirectory(restored.DataDirectory)).Ok);
    }

    [Fact]
    public void Restore_NameOutsideTheSnapshot_RefusedAndNothingWritten()
    {
        string target = Path.Combine(_directory, "restore");
        var files = new Dictionary<string, byte[]> { ["aggregator.db"] = [1], ["../escape"] = [2], ["audit/checkpoints/x.checkpoint"] = [3] };
        var ex = Assert.Throws<InvalidDataException>(() => CoordinatorSnapshot.Restore(files, target, 3));
        Assert.Contains("../escape, audit/checkpoints/x.checkpoint", ex.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(target));
        Assert.True(CoordinatorSnapshot.IsAllowedName("audit/checkpoints/12.checkpoint"));
    }

    [Fact]
    public void Restore_StagingLeftByAKilledRestore_RemovedSupersededAndOtherDirectoriesKept()
    {
        string target = Path.Combine(_directory, "data");
        string abandoned = target + ".restoring-4-0badf00d";
        string superseded = target + ".superseded-3-12345678";
        string sibling = Path.Combine(_directory, "data-other.restoring-4-00000000"); // another data directory's staging
        foreach (string d in new[] { abandoned, superseded, sibling })
        {
            Directory.CreateDirectory(d);
            File.WriteAllBytes(Path.Combine(d, "aggregator.db"), [1, 2, 3]);
        }

        CoordinatorSnapshot.Restore(new Dictionary<string, byte[]> { ["aggregator.db"] = [9] }, target, 5);

        Assert.False(Directory.Exists(abandoned), "the staging directory of the killed restore is still there");
        Assert.True(File.Exists(Path.Combine(superseded, "aggregator.db")), "a superseded data directory was touched");
        Assert.True(File.Exists(Path.Combine(sibling, "aggregator.db")), "another data directory's staging was touched");
        Assert.Equal([9], File.ReadAllBytes(Path.Combine(target, "aggregator.db")));
        Assert.Empty(Directory.EnumerateDirectories(_directory, "data.restoring-*"));
    }

    private AggregatorOptions Options(FrontFederation federation, string data) => new()
    {
        Federation = federation.Federation,
        KitDirectory = federation.Provisioned.AggregatorKitDirectory,
        DataDirectory = Path.Combine(_directory, data),
        InitialModel = federation.InitialModelPath,
    };

    private static async Task ExpireAsync(NpgsqlDataSource db, string federation)
    {
        await using NpgsqlCommand command = db.CreateCommand("UPDATE securefed_coordinator_lease SET expires_utc = clock_timestamp() WHERE federation = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = federation });
        await command.ExecuteNonQueryAsync().WaitAsync(Timeout);
    }
}
