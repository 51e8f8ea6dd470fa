using System.Diagnostics;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Cluster.Bench;
using SecureFed.Cluster.Lease;
using Xunit.Abstractions;

using static SecureFed.Cluster.Tests.CoordinatorStateTesting;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The coordinator's audit log in PostgreSQL (a throw-away server): one append-only row per line with a running hash,
/// appended under the lease's epoch at every stage close and commit point, each line once; a takeover restores the log
/// from the rows, verifies it and continues it, and refuses (naming the line, leaving the local data directory as it
/// was) a row that is missing or corrupt.
/// </summary>
public sealed class CoordinatorAuditRowsTests : IClassFixture<PostgresServer>, IDisposable
{
    private readonly PostgresServer _postgres;
    private readonly ITestOutputHelper _output;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "securefed-audit-rows-" + Guid.NewGuid().ToString("N"));

    public CoordinatorAuditRowsTests(PostgresServer postgres, ITestOutputHelper output)
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
    public async Task TakeOver_StageLinesAfterTheLastCommitPoint_RestoredVerifiedAndContinuedBySuccessor()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var federation = new FrontFederation(_directory, "audit-rows", ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "audit-rows");
        AggregatorOptions optionsA = Options(federation, "silo-a-data");
        AggregatorOptions optionsB = Options(federation, "silo-b-data");
        string checkpointOfA = Path.Combine(_directory, "a-checkpoint");
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);
        string[] linesOfA;
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            // Start-up and round opened: A's last commit points.
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            long round = a.Store.BeginRound("{}");
            a.Audit.Append(AuditEvents.RoundOpened, f => f.Add("round", round));
            a.Audit.Checkpoint();
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            File.Copy(Path.Combine(AggregatorState.AuditDirectory(optionsA.DataDirectory), AuditLog.LatestCheckpointFileName), checkpointOfA);

            // The masked-input stage: what each site sent, who dropped out, then the stage closes (no commit point).
            a.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", round).Add("site", "site-a").Add("bytes", 400L).Add("sha256", new string('a', 64)));
            a.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", round).Add("site", "site-b").Add("bytes", 400L).Add("sha256", new string('b', 64)));
            a.Audit.Append(AuditEvents.Dropout, f => f.Add("round", round).Add("stage", "masked_input").Add("sites", new[] { "site-c" }));
            await fenceA.SaveAuditAsync(a, CancellationToken.None).WaitAsync(WaitLimit);

            // A line written after the stage close and never saved: the window that is still lost (docs/cluster.md §6). (The
            // round coordinator saves its unmask.requested line in the consistency stage's commit point; any line will do here.)
            a.Audit.Append(AuditEvents.UnmaskRequested, f => f.Add("round", round).Add("reason", "never saved"));
            linesOfA = File.ReadAllLines(Path.Combine(AggregatorState.AuditDirectory(optionsA.DataDirectory), AuditLog.LogFileName));
        }

        // A is abandoned (no more saves); its lease expires and B takes over.
        await ExpireAsync(db, "audit-rows");
        var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
        var stateB = new PostgresCoordinatorState(db, lease);
        await using ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
            keeperB, stateB, optionsB.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);
        string auditB = AggregatorState.AuditDirectory(optionsB.DataDirectory);
        string[] restored = File.ReadAllLines(Path.Combine(auditB, AuditLog.LogFileName));
        Assert.Equal(linesOfA[..^1], restored); // every line A saved, bit for bit, in order
        Assert.Contains(restored, l => l.Contains("\"site\":\"site-b\"", StringComparison.Ordinal) && l.Contains(AuditEvents.MaskedInputReceived, StringComparison.Ordinal));
        Assert.Contains(restored, l => l.Contains(AuditEvents.Dropout, StringComparison.Ordinal));
        Assert.DoesNotContain(restored, l => l.Contains("never saved", StringComparison.Ordinal));
        AuditVerification beforeB = AuditVerifier.Verify(auditB, previousCheckpoint: checkpointOfA);
        Assert.True(beforeB.Ok, beforeB.FirstProblem);
        Assert.Equal(0, beforeB.UncoveredLines); // the stage close signed a checkpoint over its lines and saved it with them

        // B opens the restored log and continues it: its lines chain onto A's, and are saved as rows in turn.
        using (AggregatorState b = AggregatorState.Open(optionsB))
        {
            Assert.Equal(1, b.Store.AbortInterruptedRounds("the coordinator stopped while the round was open"));
            b.Audit.Append(AuditEvents.RoundAborted, f => f.Add("rounds", 1).Add("reason", "the coordinator stopped while the round was open"));
            b.Audit.Checkpoint();
            await fenceB.CommitAsync(b, CancellationToken.None).WaitAsync(WaitLimit);
        }

        AuditVerification afterB = AuditVerifier.Verify(auditB, previousCheckpoint: checkpointOfA);
        Assert.True(afterB.Ok, afterB.FirstProblem);
        Assert.Equal(0, afterB.UncoveredLines);
        string[] linesOfB = File.ReadAllLines(Path.Combine(auditB, AuditLog.LogFileName));
        Assert.Equal(restored, linesOfB[..restored.Length]);
        Assert.Contains(linesOfB[restored.Length..], l => l.Contains(AuditEvents.LogOpened, StringComparison.Ordinal));

        // The database holds B's log, line for line, each line written under the epoch of the coordinator that wrote it.
        List<(long Line, long Epoch)> rows = await AuditRowsAsync(db, "audit-rows");
        Assert.Equal(Enumerable.Range(1, linesOfB.Length).Select(i => (long)i), rows.Select(r => r.Line));
        Assert.All(rows.Take(restored.Length), r => Assert.Equal(1, r.Epoch));
        Assert.All(rows.Skip(restored.Length), r => Assert.Equal(2, r.Epoch));
        string again = Path.Combine(_directory, "again", AuditLog.LogFileName);
        Assert.Equal(((long)linesOfB.Length, new FileInfo(Path.Combine(auditB, AuditLog.LogFileName)).Length),
            await new PostgresCoordinatorState(db, lease).RestoreAuditAsync(again, CancellationToken.None).WaitAsync(WaitLimit));
        Assert.Equal(File.ReadAllBytes(Path.Combine(auditB, AuditLog.LogFileName)), File.ReadAllBytes(again));
    }

    [SkippableFact]
    public async Task SaveAuditAsync_LongLog_EachSaveSendsOnlyItsNewLines()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var federation = new FrontFederation(_directory, "audit-rows-once", ["site-a", "site-b", "site-c"]);
        string pool = "audit-rows-" + Guid.NewGuid().ToString("N");
        await using NpgsqlDataSource db = new NpgsqlDataSourceBuilder(_postgres.ConnectionString) { Name = pool }.Build();
        using var sent = new NpgsqlBytesWritten(pool);
        var lease = new PostgresCoordinatorLease(db, "audit-rows-once");
        var keeper = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fence = await ClusterCoordinatorFence.TakeOverAsync(
            keeper, new PostgresCoordinatorState(db, lease), Options(federation, "silo-a-data").DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);
        using AggregatorState a = AggregatorState.Open(Options(federation, "silo-a-data"));
        string log = Path.Combine(AggregatorState.AuditDirectory(a.DataDirectory), AuditLog.LogFileName);

        // A long log (many rounds' worth of lines), saved once at a commit point.
        for (int i = 0; i < 3000; i++)
        {
            a.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", i / 10).Add("site", "site-a").Add("bytes", 400L).Add("sha256", new string('c', 64)));
        }

        long first = await SentAsync(sent, () => fence.CommitAsync(a, CancellationToken.None));
        long logBytes = new FileInfo(log).Length;
        _output.WriteLine($"first commit point: {first} bytes sent for a log of {logBytes} bytes");
        Assert.True(first >= logBytes, $"{first} < {logBytes}");

        // Then stage closes of three lines each, and a commit point: each sends its new lines, never the log again.
        var perSave = new List<(long Sent, long NewBytes)>();
        var elapsed = new List<double>();
        for (int stage = 0; stage < 20; stage++)
        {
            long before = new FileInfo(log).Length;
            for (int i = 0; i < 3; i++)
            {
                a.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", 400 + stage).Add("site", "site-b").Add("bytes", 400L).Add("sha256", new string('d', 64)));
            }

            var clock = Stopwatch.StartNew();
            long bytes = await SentAsync(sent, () => fence.SaveAuditAsync(a, CancellationToken.None));
            elapsed.Add(clock.Elapsed.TotalMilliseconds);
            perSave.Add((bytes, new FileInfo(log).Length - before));
        }

        a.Audit.Append(AuditEvents.RoundCompleted, f => f.Add("round", 420));
        long commitNewBytes = new FileInfo(log).Length - logBytes - perSave.Sum(p => p.NewBytes);
        var direct = new PostgresCoordinatorState(db, lease);
        long fresh = await SentAsync(sent, () => direct.SaveAuditAsync(log, "silo-a", fence.Epoch, CancellationToken.None)); // a second instance: checks the prefix, sends one line
        _output.WriteLine($"stage close of 3 lines: {perSave.Average(p => p.NewBytes):F0} new bytes, {perSave.Average(p => p.Sent):F0} bytes sent, " +
            $"{elapsed.Order().ElementAt(elapsed.Count / 2):F1} ms median per fenced save; a new instance's first save of one line ({commitNewBytes} bytes): {fresh} bytes sent");
        // Each stage close: its new lines, plus the fenced transaction and the checkpoint it signed over them (two rows of
        // a few hundred bytes: checkpoint.latest and checkpoints/<size>.checkpoint), never the log again.
        Assert.All(perSave, p => Assert.InRange(p.Sent, p.NewBytes, p.NewBytes + 4096));
        Assert.InRange(fresh, commitNewBytes, commitNewBytes + 4096); // plus its schema check, once per instance
        Assert.True(perSave.Max(p => p.Sent) < logBytes / 50);
        Assert.Equal(File.ReadAllLines(log).Length, (await AuditRowsAsync(db, "audit-rows-once")).Count);
    }

    [SkippableFact]
    public async Task SaveAuditAsync_StaleEpochOrForkedLocalLog_NoAuditRowWritten()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "audit-rows-stale");
        long stale = (await lease.TryAcquireAsync("silo-old", TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(WaitLimit))!.Value;
        await ExpireAsync(db, "audit-rows-stale");
        long current = (await lease.TryAcquireAsync("silo-new", TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(WaitLimit))!.Value;
        Directory.CreateDirectory(_directory);
        string log = Path.Combine(_directory, "audit.jsonl");
        File.WriteAllText(log, "{\"seq\":1}\n{\"seq\":2}\n");

        // The old holder (epoch 1), alone or with a commit point: refused by the fence, no row written.
        var lost = await Assert.ThrowsAsync<CoordinatorLeaseLostException>(() =>
            new PostgresCoordinatorState(db, lease).SaveAuditAsync(log, "silo-old", stale, CancellationToken.None).WaitAsync(WaitLimit));
        Assert.Contains($"this writer holds epoch {stale}", lost.Message, StringComparison.Ordinal);
        var none = new Dictionary<string, string>(StringComparer.Ordinal);
        await Assert.ThrowsAsync<CoordinatorLeaseLostException>(() => new PostgresCoordinatorState(db, lease).SaveAsync(
            new Dictionary<string, byte[]>(StringComparer.Ordinal), none, [], _ => Stream.Null, log, "silo-old", stale, CancellationToken.None).WaitAsync(WaitLimit));
        Assert.Empty(await AuditRowsAsync(db, "audit-rows-stale"));

        // The holder's save writes both lines under its epoch; a later line is sent alone.
        var state = new PostgresCoordinatorState(db, lease);
        Assert.Equal((2, 20L), await state.SaveAuditAsync(log, "silo-new", current, CancellationToken.None).WaitAsync(WaitLimit));
        File.AppendAllText(log, "{\"seq\":3}\n{\"half\":"); // the last line is still being written: left for the next save
        Assert.Equal((1, 10L), await state.SaveAuditAsync(log, "silo-new", current, CancellationToken.None).WaitAsync(WaitLimit));
        Assert.Equal([(1L, current), (2L, current), (3L, current)], await AuditRowsAsync(db, "audit-rows-stale"));

        // A local log that is not the saved one (line 2 differs): refused, nothing written.
        string forked = Path.Combine(_directory, "forked.jsonl");
        File.WriteAllText(forked, "{\"seq\":1}\n{\"seq\":9}\n{\"seq\":3}\n{\"seq\":4}\n");
        var fork = await Assert.ThrowsAsync<InvalidDataException>(() =>
            new PostgresCoordinatorState(db, lease).SaveAuditAsync(forked, "silo-new", current, CancellationToken.None).WaitAsync(WaitLimit));
        Assert.Contains("the local log forked from the saved one; nothing was saved", fork.Message, StringComparison.Ordinal);
        Assert.Equal(3, (await AuditRowsAsync(db, "audit-rows-stale")).Count);
    }

    [SkippableFact]
    public async Task TakeOver_AuditRowCorruptOrMissing_RefusedNamingTheLineAndLocalDataUntouched()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var federation = new FrontFederation(_directory, "audit-rows-bad", ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "audit-rows-bad");
        AggregatorOptions optionsA = Options(federation, "silo-a-data");
        AggregatorOptions optionsB = Options(federation, "silo-b-data");
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        long lines;
        await using (ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit))
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            long round = a.Store.BeginRound("{}");
            a.Audit.Append(AuditEvents.RoundOpened, f => f.Add("round", round));
            a.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", round).Add("site", "site-a").Add("bytes", 400L).Add("sha256", new string('e', 64)));
            a.Audit.Checkpoint();
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            lines = a.Audit.Size;
        }

        // B's own older state, which a failed restore must leave exactly as it was.
        Directory.CreateDirectory(Path.Combine(optionsB.DataDirectory, "audit"));
        File.WriteAllText(Path.Combine(optionsB.DataDirectory, "aggregator.db"), "B's own round store");
        File.WriteAllText(Path.Combine(optionsB.DataDirectory, "audit", "audit.jsonl"), "B's own log\n");
        Dictionary<string, string> before = Contents(optionsB.DataDirectory);

        // A bit flipped in line 2's bytes: refused, naming it.
        await ExecuteAsync(db, "UPDATE securefed_coordinator_audit SET bytes = set_byte(bytes, 5, get_byte(bytes, 5) # 1) WHERE federation = 'audit-rows-bad' AND line = 2");
        var corrupt = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-b", optionsB));
        Assert.Contains("audit line 2 of federation 'audit-rows-bad' in the cluster's database (table securefed_coordinator_audit) is corrupt: its running SHA-256 does not match", corrupt.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);
        await ExecuteAsync(db, "UPDATE securefed_coordinator_audit SET bytes = set_byte(bytes, 5, get_byte(bytes, 5) # 1) WHERE federation = 'audit-rows-bad' AND line = 2");

        // The last line gone (every running hash before it still matches): the saved checkpoint covers it, so the
        // restored log does not verify.
        await ExecuteAsync(db, $"DELETE FROM securefed_coordinator_audit WHERE federation = 'audit-rows-bad' AND line = {lines}");
        var truncated = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-c", optionsB));
        Assert.Contains("the audit log of federation 'audit-rows-bad' restored from the cluster's database", truncated.Message, StringComparison.Ordinal);
        Assert.Contains("does not verify", truncated.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);

        // Line 1 gone: refused, naming it.
        await ExecuteAsync(db, "DELETE FROM securefed_coordinator_audit WHERE federation = 'audit-rows-bad' AND line = 1");
        var missing = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-d", optionsB));
        Assert.Contains("audit line 1 of federation 'audit-rows-bad' is missing from the cluster's database (table securefed_coordinator_audit): the next saved line is 2", missing.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);
    }

    [SkippableFact]
    public async Task TakeOver_StageLineRewrittenInTheDatabaseWithItsRunningHashes_RefusedSinceTheStageCloseSignedIt()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var federation = new FrontFederation(_directory, "audit-rows-rewritten", ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "audit-rows-rewritten");
        AggregatorOptions optionsA = Options(federation, "silo-a-data");
        AggregatorOptions optionsB = Options(federation, "silo-b-data");
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        long checkpointed;
        await using (ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit))
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            long round = a.Store.BeginRound("{}");
            a.Audit.Append(AuditEvents.RoundOpened, f => f.Add("round", round));
            a.Audit.Checkpoint();
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);

            // A stage closes after two receipts; then the coordinator is gone before its next commit point.
            a.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", round).Add("site", "site-a").Add("bytes", 400L).Add("sha256", new string('a', 64)));
            a.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", round).Add("site", "site-b").Add("bytes", 400L).Add("sha256", new string('b', 64)));
            await fenceA.SaveAuditAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            checkpointed = a.Audit.LatestCheckpoint!.Size;
            Assert.Equal(a.Audit.Size, checkpointed);
        }

        // The saved checkpoint is the stage close's, and it signs every saved line.
        IReadOnlyDictionary<string, byte[]> saved = await new PostgresCoordinatorState(db, lease).LoadAsync(CancellationToken.None).WaitAsync(WaitLimit);
        Assert.Equal(checkpointed, SignedCheckpoint.Parse(System.Text.Encoding.UTF8.GetString(saved["audit/" + AuditLog.LatestCheckpointFileName])).Size);
        Assert.Contains($"audit/{AuditLog.CheckpointDirectoryName}/{checkpointed}{AuditLog.CheckpointExtension}", saved.Keys);
        Assert.Equal(checkpointed, (await AuditRowsAsync(db, "audit-rows-rewritten")).Count);

        // Whoever can write the database rewrites site-b's receipt (same length) and every running hash from there on, so
        // that the rows are consistent again: the restore's chain check passes, the signed checkpoint does not.
        await RewriteLineAsync(db, "audit-rows-rewritten", line => line.Replace(new string('b', 64), new string('f', 64), StringComparison.Ordinal));
        Directory.CreateDirectory(optionsB.DataDirectory);
        File.WriteAllText(Path.Combine(optionsB.DataDirectory, "aggregator.db"), "B's own round store");
        Dictionary<string, string> before = Contents(optionsB.DataDirectory);
        await ExpireAsync(db, "audit-rows-rewritten");
        var refused = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-b", optionsB));
        Assert.Contains("the audit log of federation 'audit-rows-rewritten' restored from the cluster's database", refused.Message, StringComparison.Ordinal);
        Assert.Contains("does not verify", refused.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);
    }

    /// <summary>Rewrites the first saved line that <paramref name="rewrite"/> changes and recomputes every running hash from it on, as a writer of the database could.</summary>
    private static async Task RewriteLineAsync(NpgsqlDataSource db, string federation, Func<string, string> rewrite)
    {
        var rows = new List<(long Line, byte[] Bytes)>();
        await using (NpgsqlCommand read = db.CreateCommand("SELECT line, bytes FROM securefed_coordinator_audit WHERE federation = $1 ORDER BY line"))
        {
            read.Parameters.AddWithValue(federation);
            await using NpgsqlDataReader reader = await read.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Add((reader.GetInt64(0), reader.GetFieldValue<byte[]>(1)));
            }
        }

        byte[] chain = new byte[SHA256.HashSizeInBytes];
        bool changed = false;
        foreach ((long line, byte[] bytes) in rows)
        {
            string text = System.Text.Encoding.UTF8.GetString(bytes);
            string after = changed ? text : rewrite(text);
            bool now = !changed && after != text;
            changed |= now;
            byte[] newBytes = System.Text.Encoding.UTF8.GetBytes(after);
            Assert.Equal(bytes.Length, newBytes.Length);
            chain = CoordinatorAuditRows.NextChain(chain, newBytes);
            await using NpgsqlCommand write = db.CreateCommand("UPDATE securefed_coordinator_audit SET bytes = $1, chain = $2 WHERE federation = $3 AND line = $4");
            write.Parameters.AddWithValue(newBytes);
            write.Parameters.AddWithValue(chain);
            write.Parameters.AddWithValue(federation);
            write.Parameters.AddWithValue(line);
            await write.ExecuteNonQueryAsync();
        }

        Assert.True(changed, "no saved line was rewritten");
    }

    [SkippableFact]
    public async Task CommitAsync_AuditLogSavedWholeByAnEarlierVersion_RestoredThenSavedAsRowsAndTheFileRowDropped()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var federation = new FrontFederation(_directory, "audit-rows-whole", ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "audit-rows-whole");
        AggregatorOptions optionsA = Options(federation, "silo-a-data");
        AggregatorOptions optionsB = Options(federation, "silo-b-data");
        long epoch = (await lease.TryAcquireAsync("silo-a", TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(WaitLimit))!.Value;
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            // As the coordinator does: the round stored before its opening is logged (a log naming a round the store lacks
            // is refused at start-up as an older store copy).
            long round = a.Store.BeginRound("{}");
            a.Audit.Append(AuditEvents.RoundOpened, f => f.Add("round", round));
            a.Audit.Checkpoint();

            // What a coordinator before audit rows saved: the audit log whole, as a file row.
            await new PostgresCoordinatorState(db, lease).SaveAsync(CoordinatorSnapshot.Take(a), "silo-a", epoch, CancellationToken.None).WaitAsync(WaitLimit);
        }

        // B restores the whole file, continues it, and its commit point saves every line as a row and drops the file row.
        await ExpireAsync(db, "audit-rows-whole");
        var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
        await using (ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
            keeperB, new PostgresCoordinatorState(db, lease), optionsB.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit))
        using (AggregatorState b = AggregatorState.Open(optionsB))
        {
            await fenceB.CommitAsync(b, CancellationToken.None).WaitAsync(WaitLimit);
        }

        string logB = Path.Combine(AggregatorState.AuditDirectory(optionsB.DataDirectory), AuditLog.LogFileName);
        Assert.Equal(File.ReadAllLines(logB).Length, (await AuditRowsAsync(db, "audit-rows-whole")).Count);
        Assert.Contains(File.ReadAllLines(logB), l => l.Contains(AuditEvents.RoundOpened, StringComparison.Ordinal));
        Assert.DoesNotContain(CoordinatorSnapshot.AuditLogName, (await new PostgresCoordinatorState(db, lease).LoadAsync(CancellationToken.None).WaitAsync(WaitLimit)).Keys);

        // C restores B's log from the rows alone, and it verifies.
        AggregatorOptions optionsC = Options(federation, "silo-c-data");
        await TakeOverAsync(db, lease, "silo-c", optionsC);
        string auditC = AggregatorState.AuditDirectory(optionsC.DataDirectory);
        Assert.Equal(File.ReadAllBytes(logB), File.ReadAllBytes(Path.Combine(auditC, AuditLog.LogFileName)));
        AuditVerification verified = AuditVerifier.Verify(auditC);
        Assert.True(verified.Ok, verified.FirstProblem);
    }

    private static async Task<long> SentAsync(NpgsqlBytesWritten sent, Func<Task> save)
    {
        long before = sent.Total;
        await save().WaitAsync(WaitLimit);
        return sent.Total - before;
    }

    private AggregatorOptions Options(FrontFederation federation, string data) => new()
    {
        Federation = federation.Federation,
        KitDirectory = federation.Provisioned.AggregatorKitDirectory,
        DataDirectory = Path.Combine(_directory, data),
        InitialModel = federation.InitialModelPath,
    };
}
