using System.Security.Cryptography;

using Microsoft.Extensions.Time.Testing;

using SecureFed.Aggregator.Persistence;

namespace SecureFed.Federation.Tests.Persistence;

public sealed class AggregatorStoreTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 29, 8, 0, 0, TimeSpan.Zero));

    private string DbPath => _dir.Combine("data", "aggregator.db");

    public void Dispose() => _dir.Dispose();

    private AggregatorStore Open() => AggregatorStore.Open(DbPath, _time);

    /// <summary>
    /// Overwrites with 0xFF the 4 KiB page of the closed store at <paramref name="offset"/> (of the file's length, rounded
    /// down to a page); the pools are cleared first, so the last connection closes and the WAL is checkpointed into the file.
    /// </summary>
    private void DamagePage(Func<long, long> offset)
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        using var file = new FileStream(DbPath, FileMode.Open, FileAccess.ReadWrite);
        file.Position = offset(file.Length) / 4096 * 4096;
        file.Write(Enumerable.Repeat((byte)0xff, 4096).ToArray());
    }

    private static (byte[] Bytes, string Sha) Model(int floats, int seed)
    {
        byte[] bytes = new byte[floats * sizeof(float)];
        new Random(seed).NextBytes(bytes);
        return (bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    [Fact]
    public void Open_NewPath_CreatesDirectoryAndWalDatabase()
    {
        using AggregatorStore store = Open();

        Assert.True(File.Exists(DbPath));
        Assert.True(File.Exists(DbPath + "-wal"), "WAL journal expected while open");
        Assert.Equal(Path.GetFullPath(DbPath), store.Path);
        Assert.Empty(store.ListRounds());
        Assert.Null(store.LatestModel());
        Assert.Empty(store.QuickCheck());
    }

    [Fact]
    public void FindModelOfRoundAndLastLedgerEntry_ReadWhatEachRoundRecorded()
    {
        using AggregatorStore store = Open();
        store.EnsureFederation("fed");
        (byte[] initial, string initialSha) = Model(8, 1);
        store.SaveModel(0, 0, initial, initialSha);
        long aborted = store.BeginRound("{}");
        store.AppendLedger(aborted, AggregatorStore.FederatedEvaluationKind, """{"n":0}""");
        store.AbortRound(aborted, "timeout");
        long completed = store.BeginRound("{}");
        store.AppendLedger(completed, AggregatorStore.FederatedEvaluationKind, """{"n":1}""");
        store.AppendLedger(completed, AggregatorStore.FederatedEvaluationKind, """{"n":2}""");
        (byte[] next, string nextSha) = Model(8, 2);
        store.CompleteRoundWithModel(completed, 1, next, nextSha, ["site-a"]);

        Assert.Null(store.FindModelOfRound(aborted));
        ModelRecord model = store.FindModelOfRound(completed)!;
        Assert.Equal((1L, nextSha), (model.Version, model.Sha256));
        Assert.Equal("""{"n":2}""", store.LastLedgerEntry(completed, AggregatorStore.FederatedEvaluationKind)!.PayloadJson);
        Assert.Equal("""{"n":0}""", store.LastLedgerEntry(aborted, AggregatorStore.FederatedEvaluationKind)!.PayloadJson);
        Assert.Null(store.LastLedgerEntry(completed, AggregatorStore.ModelsPrunedKind));
        Assert.Null(store.LastLedgerEntry(99, AggregatorStore.FederatedEvaluationKind));
    }

    [Fact]
    public void OpenModel_DamagedPageUnderTheBlob_ReadFailsNamingTheFileAsCorrupt()
    {
        // CLI crash hunt, session 57: the aggregator's start-up read of its model said only "SQLite Error 11: 'database
        // disk image is malformed'", naming no file.
        using (AggregatorStore store = Open())
        {
            store.EnsureFederation("fed");
            (byte[] bytes, string sha) = Model(200_000, 1);
            store.SaveModel(0, 0, bytes, sha);
        }

        DamagePage(length => length / 2); // a page in the middle of the 800 KB blob's overflow chain

        using AggregatorStore damaged = Open();
        using Stream model = damaged.OpenModel(0);
        var ex = Assert.Throws<InvalidDataException>(() => model.CopyTo(Stream.Null));

        Assert.StartsWith($"Aggregator database '{DbPath}' is corrupt", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenServerOptimizer_DamagedPageUnderTheMoments_ReadFailsNamingTheFileAsCorrupt()
    {
        // Diff review, session 57: the moments' stream (read by the cluster coordinator's commit) is read as the model's is.
        const int d = 100_000;
        using (AggregatorStore store = Open())
        {
            store.SaveModel(0, 0, Model(d, 1).Bytes, Model(d, 1).Sha);
            long round = store.BeginRound("{}");
            (byte[] bytes, string sha) = Model(d, 2);
            double[] first = [.. Enumerable.Range(0, d).Select(i => Math.Sin(i) * 1e-3)];
            double[] second = [.. Enumerable.Range(0, d).Select(i => Math.Cos(i) * Math.Cos(i) * 1e-6)];
            store.CompleteRoundWithModel(round, 1, bytes, sha, ["a"], new ServerOptimizerMoments("adam", 3, first, second));
        }

        DamagePage(length => length * 2 / 3); // two 400 KB models, then the 1.6 MB of moments: in the moments' pages

        using AggregatorStore damaged = Open();
        using Stream moments = damaged.OpenServerOptimizer(1);
        var ex = Assert.Throws<InvalidDataException>(() => moments.CopyTo(Stream.Null));

        Assert.StartsWith($"Aggregator database '{DbPath}' is corrupt", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(65536)]
    [InlineData(-1)]
    public void Compact_DamagedPage_SaysTheStoreIsCorruptNotThatTheDiskIsFull(long offset)
    {
        // CLI crash hunt, session 57: VACUUM over a damaged page chain can stop with SQLITE_FULL, which was reported as
        // "cannot be opened or written (database or disk is full); check ... free space" with the disk nearly empty.
        using (AggregatorStore store = Open())
        {
            store.EnsureFederation("fed");
            (byte[] bytes, string sha) = Model(2_000_000, 1);
            store.SaveModel(0, 0, bytes, sha);
        }

        DamagePage(length => offset >= 0 ? offset : length / 2);
        byte[] before = File.ReadAllBytes(DbPath);
        var ex = Assert.Throws<InvalidDataException>(() => AggregatorStore.Compact(DbPath));

        Assert.StartsWith($"Aggregator database '{DbPath}' is corrupt", ex.Message, StringComparison.Ordinal);
        byte[] after = File.ReadAllBytes(DbPath);
        Assert.Equal(before.Length, after.Length);
        Assert.Equal(before[100..], after[100..]); // every page as it was (the 100-byte header's change counter may move)
    }

    [Fact]
    public void RoundLifecycle_BeginStagesComplete_IsPersistedAcrossReopen()
    {
        using (AggregatorStore store = Open())
        {
            store.EnsureFederation("fed");
            long round = store.BeginRound("""{"clip":1.0}""");
            _time.Advance(TimeSpan.FromSeconds(3));
            store.RecordStage(round, "AdvertiseKeys", ["site-jp", "site-de", "site-fr"]);
            store.RecordStage(round, "MaskedInput", ["site-de", "site-fr"]);
            _time.Advance(TimeSpan.FromSeconds(4));
            store.CompleteRound(round, new string('a', 64), ["site-fr", "site-de"]);
            Assert.Equal(1, round);
        }

        using AggregatorStore reopened = Open();
        RoundRecord record = Assert.Single(reopened.ListRounds());
        Assert.Equal(RoundStatus.Completed, record.Status);
        Assert.Equal("""{"clip":1.0}""", record.ConfigurationJson);
        Assert.Equal(["site-de", "site-fr"], record.Participants);
        Assert.Equal(new string('a', 64), record.ModelSha256);
        Assert.Equal(_time.GetUtcNow() - TimeSpan.FromSeconds(7), record.StartedUtc);
        Assert.Equal(_time.GetUtcNow(), record.EndedUtc);
        Assert.Equal(["AdvertiseKeys", "MaskedInput"], record.Stages.Select(s => s.Stage));
        Assert.Equal(["site-de", "site-fr", "site-jp"], record.Stages[0].Participants);
        Assert.Equal("fed", reopened.FederationName);
    }

    [Fact]
    public void ListRecentRounds_LongHistory_OnlyTheMostRecentOldestFirstWithTheirStages()
    {
        using AggregatorStore store = Open();
        for (int i = 1; i <= 12; i++)
        {
            long round = store.BeginRound("{}");
            store.RecordStage(round, "AdvertiseKeys", ["a", "b", "c"]);
            if (i % 3 == 0)
            {
                store.AbortRound(round, "too many dropouts " + i);
            }
            else
            {
                store.CompleteRound(round, new string('c', 64), ["a", "b"]);
            }
        }

        IReadOnlyList<RoundRecord> recent = store.ListRecentRounds(5);

        Assert.Equal([8L, 9L, 10L, 11L, 12L], recent.Select(r => r.Round));
        Assert.Equal("too many dropouts 9", recent[1].AbortReason);
        Assert.All(recent, r => Assert.Equal("AdvertiseKeys", Assert.Single(r.Stages).Stage));
        Assert.Equal(store.ListRounds().TakeLast(5), recent, (a, b) => a.Round == b.Round && a.Status == b.Status);
        Assert.Equal(12, store.ListRecentRounds(50).Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => store.ListRecentRounds(0));
    }

    [Fact]
    public void BeginRound_AfterCompletedAndAborted_NumbersIncrease()
    {
        using AggregatorStore store = Open();
        long r1 = store.BeginRound("{}");
        store.AbortRound(r1, "too many dropouts");
        long r2 = store.BeginRound("{}");
        store.CompleteRound(r2, new string('b', 64), ["a", "b"]);
        long r3 = store.BeginRound("{}");

        Assert.Equal([1L, 2L, 3L], new[] { r1, r2, r3 });
        Assert.Equal([RoundStatus.Aborted, RoundStatus.Completed, RoundStatus.Running], store.ListRounds().Select(r => r.Status));
        Assert.Equal("too many dropouts", store.GetRound(r1)!.AbortReason);
        Assert.Null(store.GetRound(99));
    }

    [Fact]
    public void BeginRound_WhileAnotherRuns_Throws()
    {
        using AggregatorStore store = Open();
        store.BeginRound("{}");

        var ex = Assert.Throws<InvalidOperationException>(() => store.BeginRound("{}"));

        Assert.Contains("round 1 is still running", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BeginRound_InvalidJson_ThrowsArgumentException()
    {
        using AggregatorStore store = Open();

        Assert.Throws<ArgumentException>(() => store.BeginRound("{not json"));
    }

    [Fact]
    public void CompleteRound_AbortedOrMissingRound_Throws()
    {
        using AggregatorStore store = Open();
        long round = store.BeginRound("{}");
        store.AbortRound(round, "timeout");

        var aborted = Assert.Throws<InvalidOperationException>(() => store.CompleteRound(round, new string('c', 64), ["a"]));
        var missing = Assert.Throws<InvalidOperationException>(() => store.RecordStage(7, "ShareKeys", ["a"]));

        Assert.Contains("it is aborted", aborted.Message, StringComparison.Ordinal);
        Assert.Contains("Round 7 does not exist", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AbortRound_CompletedRound_ThrowsAndAbortedIsIdempotent()
    {
        using AggregatorStore store = Open();
        long r1 = store.BeginRound("{}");
        store.CompleteRound(r1, new string('d', 64), ["a"]);
        long r2 = store.BeginRound("{}");
        store.AbortRound(r2, "first");
        store.AbortRound(r2, "second");

        Assert.Throws<InvalidOperationException>(() => store.AbortRound(r1, "late"));
        Assert.Equal("first", store.GetRound(r2)!.AbortReason);
    }

    [Fact]
    public void AbortInterruptedRounds_AfterCrashMidRound_AbortsOnlyTheRunningRound()
    {
        using (AggregatorStore store = Open())
        {
            long done = store.BeginRound("{}");
            store.CompleteRoundWithModel(done, 1, Model(16, 1).Bytes, Model(16, 1).Sha, ["a", "b"]);
            long interrupted = store.BeginRound("{}");
            store.RecordStage(interrupted, "ShareKeys", ["a", "b"]);

            // "Crash": dispose without completing the round.
        }

        using AggregatorStore reopened = Open();
        int aborted = reopened.AbortInterruptedRounds("aggregator restarted");
        int abortedAgain = reopened.AbortInterruptedRounds("again");
        long next = reopened.BeginRound("{}");

        Assert.Equal(1, aborted);
        Assert.Equal(0, abortedAgain);
        Assert.Equal(RoundStatus.Completed, reopened.GetRound(1)!.Status);
        RoundRecord r2 = reopened.GetRound(2)!;
        Assert.Equal(RoundStatus.Aborted, r2.Status);
        Assert.Equal("aggregator restarted", r2.AbortReason);
        Assert.Equal(3, next);
        Assert.Equal(Model(16, 1).Bytes, reopened.LoadModel(1));
    }

    [Fact]
    public void SaveModel_FourMegabytes_RoundTripsAndLatestIsNewest()
    {
        using AggregatorStore store = Open();
        long round = store.BeginRound("{}");
        (byte[] big, string bigSha) = Model(1_000_000, 2);
        (byte[] small, string smallSha) = Model(10, 3);

        store.SaveModel(1, round, small, smallSha);
        store.CompleteRoundWithModel(round, 2, big, bigSha, ["a"]);

        Assert.Equal(big, store.LoadModel(2));
        Assert.Equal(small, store.LoadModel(1));
        Assert.Null(store.LoadModel(3));
        ModelRecord latest = store.LatestModel()!;
        Assert.Equal((2L, round, bigSha, (long)big.Length), (latest.Version, latest.Round, latest.Sha256, latest.SizeBytes));
        Assert.Equal(bigSha, store.GetRound(round)!.ModelSha256);
    }

    [Fact]
    public void Open_SchemaVersion1WithModels_MigratesKeepingEveryModelBitForBit()
    {
        // A database written by the first schema (bytes before created_utc), with a model that spans many pages.
        (byte[] initial, string initialSha) = Model(300_000, 11);
        (byte[] fused, string fusedSha) = Model(17, 12);
        Directory.CreateDirectory(Path.GetDirectoryName(DbPath)!);
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = StoreSchema.Migrations[0] + """
                CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_utc TEXT NOT NULL);
                INSERT INTO schema_version (version, applied_utc) VALUES (1, '2026-11-01T00:00:00.0000000Z');
                INSERT INTO rounds (round, status, configuration, started_utc) VALUES (1, 'completed', '{}', '2026-11-01T00:00:00.0000000Z');
                INSERT INTO models (version, round, sha256, size_bytes, bytes, created_utc) VALUES (0, NULL, $s0, $n0, $b0, '2026-11-01T00:00:00.0000000Z');
                INSERT INTO models (version, round, sha256, size_bytes, bytes, created_utc) VALUES (1, 1, $s1, $n1, $b1, '2026-11-01T00:00:01.0000000Z');
                """;
            cmd.Parameters.AddWithValue("$s0", initialSha);
            cmd.Parameters.AddWithValue("$n0", (long)initial.Length);
            cmd.Parameters.AddWithValue("$b0", initial);
            cmd.Parameters.AddWithValue("$s1", fusedSha);
            cmd.Parameters.AddWithValue("$n1", (long)fused.Length);
            cmd.Parameters.AddWithValue("$b1", fused);
            cmd.ExecuteNonQuery();
        }

        using AggregatorStore store = Open();

        Assert.Equal(initial, store.LoadModel(0));
        Assert.Equal(fused, store.LoadModel(1));
        ModelRecord latest = store.LatestModel()!;
        Assert.Equal((1L, 1L, fusedSha, (long)fused.Length), (latest.Version, latest.Round, latest.Sha256, latest.SizeBytes));
        (byte[] next, string nextSha) = Model(300_001, 13);
        store.SaveModel(2, 0, next, nextSha);
        Assert.Equal(next, store.LoadModel(2));
        Assert.Equal(["version", "round", "sha256", "size_bytes", "created_utc", "bytes"], ModelColumns());
    }

    [Fact]
    public void Open_NewDatabase_ModelBytesAreTheLastColumn()
    {
        Open().Dispose();

        // The zeroblob insert of SaveModelCore is only free of a whole-model copy when the blob is the row's last column.
        Assert.Equal("bytes", ModelColumns()[^1]);
    }

    private List<string> ModelColumns()
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={DbPath};Pooling=False");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT name FROM pragma_table_info('models') ORDER BY cid;";
        using var reader = cmd.ExecuteReader();
        var columns = new List<string>();
        while (reader.Read())
        {
            columns.Add(reader.GetString(0));
        }

        return columns;
    }

    [Fact]
    public void SaveModel_InitialModelVersionZeroOutsideAnyRound_StoredThenRoundsAddVersions()
    {
        using AggregatorStore store = Open();
        (byte[] initial, string initialSha) = Model(32, 7);
        (byte[] fused, string fusedSha) = Model(32, 8);

        store.SaveModel(0, 0, initial, initialSha);
        ModelRecord first = store.LatestModel()!;
        long round = store.BeginRound("{}");
        store.CompleteRoundWithModel(round, 1, fused, fusedSha, ["a"]);

        Assert.Equal((0L, 0L), (first.Version, first.Round));
        Assert.Equal(initial, store.LoadModel(0));
        Assert.Equal((1L, round), (store.LatestModel()!.Version, store.LatestModel()!.Round));
        Assert.Throws<InvalidOperationException>(() => store.SaveModel(0, 0, initial, initialSha));
        Assert.Throws<InvalidOperationException>(() => store.SaveModel(2, 5, initial, initialSha));
    }

    [Fact]
    public void SaveModel_WrongDigestOrOldVersion_Refused()
    {
        using AggregatorStore store = Open();
        long round = store.BeginRound("{}");
        (byte[] bytes, string sha) = Model(8, 4);
        store.SaveModel(5, round, bytes, sha);

        Assert.Throws<ArgumentException>(() => store.SaveModel(6, round, bytes, new string('0', 64)));
        var old = Assert.Throws<InvalidOperationException>(() => store.SaveModel(5, round, bytes, sha));
        Assert.Contains("versions only increase", old.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CompleteRoundWithModel_ModelRefused_RoundStaysRunning()
    {
        using AggregatorStore store = Open();
        long round = store.BeginRound("{}");
        (byte[] bytes, string sha) = Model(8, 5);
        store.SaveModel(3, round, bytes, sha);

        Assert.Throws<InvalidOperationException>(() => store.CompleteRoundWithModel(round, 2, bytes, sha, ["a"]));

        Assert.Equal(RoundStatus.Running, store.GetRound(round)!.Status);
    }

    [Fact]
    public void LoadModel_BytesCorruptedOnDisk_InvalidDataException()
    {
        (byte[] bytes, string sha) = Model(1024, 6);
        using (AggregatorStore store = Open())
        {
            long round = store.BeginRound("{}");
            store.CompleteRoundWithModel(round, 1, bytes, sha, ["a"]);
        }

        // Flip one byte of the stored model behind the store's back.
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            connection.Open();
            using var cmd = connection.CreateCommand();
            byte[] tampered = (byte[])bytes.Clone();
            tampered[100] ^= 0x01;
            cmd.CommandText = "UPDATE models SET bytes = $b WHERE version = 1;";
            cmd.Parameters.AddWithValue("$b", tampered);
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        using AggregatorStore reopened = Open();
        var ex = Assert.Throws<InvalidDataException>(() => reopened.LoadModel(1));

        Assert.Contains("Model version 1", ex.Message, StringComparison.Ordinal);
        Assert.Contains(sha, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRecordSubmission_FirstDuplicateAndConflict_HaveIdempotentSemantics()
    {
        using AggregatorStore store = Open();
        long round = store.BeginRound("{}");
        string d1 = new('1', 64);
        string d2 = new('2', 64);

        Assert.True(store.TryRecordSubmission(round, "site-de", "MaskedInput", d1));
        Assert.False(store.TryRecordSubmission(round, "site-de", "MaskedInput", d1));
        Assert.False(store.TryRecordSubmission(round, "site-de", "MaskedInput", d1.ToUpperInvariant()));
        Assert.True(store.TryRecordSubmission(round, "site-de", "Unmasking", d2));
        Assert.True(store.TryRecordSubmission(round, "site-fr", "MaskedInput", d2));
        var ex = Assert.Throws<InvalidOperationException>(() => store.TryRecordSubmission(round, "site-de", "MaskedInput", d2));

        Assert.Contains("site-de", ex.Message, StringComparison.Ordinal);
        Assert.Contains("different message", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRecordSubmission_SurvivesReopen()
    {
        string d = new('e', 64);
        using (AggregatorStore store = Open())
        {
            long round = store.BeginRound("{}");
            Assert.True(store.TryRecordSubmission(round, "s", "ShareKeys", d));
        }

        using AggregatorStore reopened = Open();
        Assert.False(reopened.TryRecordSubmission(1, "s", "ShareKeys", d));
        Assert.Throws<InvalidOperationException>(() => reopened.TryRecordSubmission(1, "s", "ShareKeys", new string('f', 64)));
    }

    [Fact]
    public void EnsureFederation_OtherFederationsDatabase_Refused()
    {
        using (AggregatorStore store = Open())
        {
            store.EnsureFederation("hospitals-eu");
        }

        using AggregatorStore reopened = Open();
        reopened.EnsureFederation("hospitals-eu");
        var ex = Assert.Throws<InvalidOperationException>(() => reopened.EnsureFederation("hospitals-us"));

        Assert.Contains("belongs to federation 'hospitals-eu', not 'hospitals-us'", ex.Message, StringComparison.Ordinal);
        Assert.Contains(reopened.Path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_DirectoryCannotBeCreated_IOExceptionNamingPath()
    {
        // Running as root, permissions do not stop us; a regular file where the directory should be does.
        string blocker = _dir.Combine("blocker");
        File.WriteAllText(blocker, "not a directory");
        string path = Path.Combine(blocker, "data", "aggregator.db");

        var ex = Assert.Throws<IOException>(() => AggregatorStore.Open(path, _time));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_CorruptFile_InvalidDataExceptionAndFileUntouched()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(DbPath)!);
        byte[] garbage = new byte[8192];
        new Random(9).NextBytes(garbage);
        File.WriteAllBytes(DbPath, garbage);

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorStore.Open(DbPath, _time));

        Assert.Contains(Path.GetFullPath(DbPath), ex.Message, StringComparison.Ordinal);
        Assert.Equal(garbage, File.ReadAllBytes(DbPath));
    }

    [Fact]
    public void Open_ForeignSqliteDatabase_RefusedAndUntouched()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(DbPath)!);
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "CREATE TABLE patients (id INTEGER); INSERT INTO patients VALUES (1);";
            cmd.ExecuteNonQuery();
        }

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorStore.Open(DbPath, _time));

        Assert.Contains("not a SecureFed aggregator database", ex.Message, StringComparison.Ordinal);
        Assert.Contains("patients", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_NewerSchemaVersion_Refused()
    {
        Open().Dispose();

        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "INSERT INTO schema_version (version, applied_utc) VALUES (99, 'x');";
            cmd.ExecuteNonQuery();
        }

        var ex = Assert.Throws<InvalidDataException>(() => Open());

        Assert.Contains("schema version 99", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Ledger_Append_ListsInOrderAndFiltersByKind()
    {
        using AggregatorStore store = Open();
        long round = store.BeginRound("{}");
        long a = store.AppendLedger(round, "privacy", """{"epsilon":0.5}""");
        long b = store.AppendLedger(null, "checkpoint", """{"root":"ab"}""");
        long c = store.AppendLedger(round, "privacy", """{"epsilon":0.7}""");

        Assert.Equal([a, b, c], store.ListLedger().Select(e => e.Sequence));
        Assert.Equal([a, c], store.ListLedger("privacy").Select(e => e.Sequence));
        Assert.Null(store.ListLedger("checkpoint").Single().Round);
        Assert.Throws<InvalidOperationException>(() => store.AppendLedger(42, "privacy", "{}"));
    }

    [Fact]
    public void SnapshotWithoutModelBytesTo_ThenWriteModelBytesFromOpenModel_EveryVersionAndRecordEqualBitForBit()
    {
        using AggregatorStore store = Open();
        store.EnsureFederation("fed");
        (byte[] initial, string initialSha) = Model(300_000, 10);
        store.SaveModel(0, 0, initial, initialSha);
        for (int i = 1; i <= 2; i++)
        {
            long round = store.BeginRound($$"""{"round":{{i}}}""");
            store.RecordStage(round, "MaskedInput", ["site-a", "site-b"]);
            Assert.True(store.TryRecordSubmission(round, "site-a", "MaskedInput", new string('c', 64)));
            store.AppendLedger(round, "privacy", """{"epsilon":0.5}""");
            (byte[] bytes, string sha) = Model(300_000, 10 + i);
            store.CompleteRoundWithModel(round, i, bytes, sha, ["site-a", "site-b"]);
        }

        long aborted = store.BeginRound("{}");
        store.AbortRound(aborted, "dropouts");
        string copyPath = _dir.Combine("copy", "aggregator.db");
        Directory.CreateDirectory(Path.GetDirectoryName(copyPath)!);

        IReadOnlyList<ModelRecord> models = store.SnapshotWithoutModelBytesTo(copyPath);

        Assert.Equal(store.ListModels(), models);
        Assert.Equal([0L, 1L, 2L], models.Select(m => m.Version));
        Assert.True(new FileInfo(copyPath).Length < 300_000 * sizeof(float), "the copy holds no model bytes");
        using (AggregatorStore copy = AggregatorStore.Open(copyPath, _time))
        {
            Assert.Equal(models, copy.ListModelsWithoutBytes());
            foreach (ModelRecord model in models)
            {
                using Stream source = store.OpenModel(model.Version);
                Assert.Equal(model.SizeBytes, source.Length);
                copy.WriteModelBytes(model.Version, source);
            }

            Assert.Empty(copy.ListModelsWithoutBytes());
            Assert.Equal(models, copy.ListModels());
            foreach (ModelRecord model in models)
            {
                Assert.Equal(store.LoadModel(model.Version), copy.LoadModel(model.Version));
            }

            Assert.Equal(Describe(store.ListRounds()), Describe(copy.ListRounds()));
            Assert.Equal(store.ListLedger(), copy.ListLedger());
            Assert.Equal("fed", copy.FederationName);
            Assert.False(copy.TryRecordSubmission(1, "site-a", "MaskedInput", new string('c', 64)));
            Assert.Empty(copy.QuickCheck());
            Assert.Equal(store.AppendLedger(null, "next", "{}"), copy.AppendLedger(null, "next", "{}")); // the sequence continues alike
        }

        Assert.Throws<IOException>(() => store.SnapshotWithoutModelBytesTo(copyPath));
    }

    [Fact]
    public void WriteModelBytes_WrongShortOrLongBytes_RefusedNamingTheVersionAndNothingWritten()
    {
        using AggregatorStore store = Open();
        long round = store.BeginRound("{}");
        (byte[] bytes, string sha) = Model(5_000, 4);
        store.CompleteRoundWithModel(round, 1, bytes, sha, ["a"]);
        string copyPath = _dir.Combine("copy.db");
        store.SnapshotWithoutModelBytesTo(copyPath);
        using AggregatorStore copy = AggregatorStore.Open(copyPath, _time);
        byte[] flipped = (byte[])bytes.Clone();
        flipped[12_345] ^= 0x01;

        var wrong = Assert.Throws<InvalidDataException>(() => copy.WriteModelBytes(1, new MemoryStream(flipped)));
        var shorter = Assert.Throws<InvalidDataException>(() => copy.WriteModelBytes(1, new MemoryStream(bytes[..^1])));
        var longer = Assert.Throws<InvalidDataException>(() => copy.WriteModelBytes(1, new MemoryStream([.. bytes, 0])));

        Assert.Contains("model version 1", wrong.Message, StringComparison.Ordinal);
        Assert.Contains($"not its recorded {sha}", wrong.Message, StringComparison.Ordinal);
        Assert.Contains("end after 19999 of its recorded 20000 bytes", shorter.Message, StringComparison.Ordinal);
        Assert.Contains("longer than its recorded size of 20000 bytes", longer.Message, StringComparison.Ordinal);
        Assert.Equal([1L], copy.ListModelsWithoutBytes().Select(m => m.Version)); // nothing was written
        Assert.Throws<InvalidOperationException>(() => copy.OpenModel(1));
        copy.WriteModelBytes(1, new MemoryStream(bytes));
        Assert.Equal(bytes, copy.LoadModel(1));
        Assert.Contains("already holds them", Assert.Throws<InvalidOperationException>(() => copy.WriteModelBytes(1, new MemoryStream(bytes))).Message, StringComparison.Ordinal);
        Assert.Contains("no such version", Assert.Throws<InvalidOperationException>(() => copy.WriteModelBytes(7, new MemoryStream(bytes))).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("adam")]
    [InlineData("momentum")]
    public void WriteServerOptimizerBytes_SnapshotWithoutMoments_WrittenBackBitForBitAndBadBytesRefused(string kind)
    {
        using AggregatorStore store = Open();
        store.SaveModel(0, 0, Model(1_000, 1).Bytes, Model(1_000, 1).Sha);
        long round = store.BeginRound("{}");
        (byte[] bytes, string sha) = Model(1_000, 2);
        double[] first = [.. Enumerable.Range(0, 1_000).Select(i => Math.Sin(i) * 1e-3)];
        double[] second = kind == "adam" ? [.. Enumerable.Range(0, 1_000).Select(i => Math.Cos(i) * Math.Cos(i) * 1e-6)] : [];
        store.CompleteRoundWithModel(round, 1, bytes, sha, ["a"], new ServerOptimizerMoments(kind, 3, first, second));
        ServerOptimizerRecord saved = store.ServerOptimizerMetadata()!;
        Assert.Equal(new ServerOptimizerRecord(1, kind, 3, 1_000, 8_000, second.Length * 8), saved);
        byte[] moments;
        using (Stream stream = store.OpenServerOptimizer(1))
        using (var copyOf = new MemoryStream())
        {
            stream.CopyTo(copyOf);
            moments = copyOf.ToArray();
        }

        Assert.Equal(saved.Bytes, moments.Length);
        string momentsSha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(moments));
        string copyPath = _dir.Combine("copy.db");
        store.SnapshotWithoutModelBytesTo(copyPath);
        using AggregatorStore copy = AggregatorStore.Open(copyPath, _time);
        Assert.Equal(saved with { FirstBytes = 0, SecondBytes = 0 }, copy.ServerOptimizerMetadata()); // the moments are left out
        byte[] flipped = (byte[])moments.Clone();
        flipped[100] ^= 0x01;

        var wrong = Assert.Throws<InvalidDataException>(() => copy.WriteServerOptimizerBytes(saved, momentsSha, new MemoryStream(flipped)));
        var shorter = Assert.Throws<InvalidDataException>(() => copy.WriteServerOptimizerBytes(saved, momentsSha, new MemoryStream(moments[..^1])));
        var longer = Assert.Throws<InvalidDataException>(() => copy.WriteServerOptimizerBytes(saved, momentsSha, new MemoryStream([.. moments, 0])));
        var steps = Assert.Throws<InvalidDataException>(() => copy.WriteServerOptimizerBytes(saved with { Steps = 2 }, momentsSha, new MemoryStream(moments)));

        Assert.Contains($"hash to SHA-256 {Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(flipped))}, not their recorded {momentsSha}", wrong.Message, StringComparison.Ordinal);
        Assert.Contains($"end after {moments.Length - 1} of {moments.Length} bytes", shorter.Message, StringComparison.Ordinal);
        Assert.Contains($"longer than {moments.Length} bytes", longer.Message, StringComparison.Ordinal);
        Assert.Contains($"are {kind} after 2 steps for 1000 parameters, but", steps.Message, StringComparison.Ordinal);
        Assert.Contains($"saves {kind} after 3 steps for 1000 parameters", steps.Message, StringComparison.Ordinal);
        Assert.False(copy.ServerOptimizerMetadata()!.HasBytes); // nothing was written
        copy.WriteServerOptimizerBytes(saved, momentsSha, new MemoryStream(moments));
        SavedServerOptimizer restored = copy.LoadServerOptimizer()!;
        Assert.Equal((1L, kind, 3L), (restored.ModelVersion, restored.Kind, restored.Steps));
        Assert.Equal(first, restored.First);
        Assert.Equal(kind == "adam" ? second : null, restored.Second);
        Assert.Contains("already holds them", Assert.Throws<InvalidOperationException>(() => copy.WriteServerOptimizerBytes(saved, momentsSha, new MemoryStream(moments))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CompleteRoundWithModel_FromStream_StoresTheSameBytesAndRecordAsFromMemory()
    {
        (byte[] bytes, string sha) = Model(300_000, 11); // 1.2 MB: several copy blocks and a partial last one
        using AggregatorStore fromMemory = AggregatorStore.Open(_dir.Combine("memory", "aggregator.db"), _time);
        using AggregatorStore fromStream = Open();
        long round = fromMemory.BeginRound("{}");
        Assert.Equal(round, fromStream.BeginRound("{}"));

        fromMemory.CompleteRoundWithModel(round, 1, bytes, sha, ["a", "b"], moments: null);
        using var stream = new MemoryStream([0, 0, 0, .. bytes]) { Position = 3 }; // read from the stream's position
        fromStream.CompleteRoundWithModel(round, 1, stream, sha.ToUpperInvariant(), ["a", "b"], moments: null);

        Assert.Equal(bytes, fromStream.LoadModel(1));
        Assert.Equal(fromMemory.FindModel(1), fromStream.FindModel(1));
        RoundRecord expected = fromMemory.GetRound(round)!;
        RoundRecord actual = fromStream.GetRound(round)!;
        Assert.Equal(RoundStatus.Completed, actual.Status);
        Assert.Equal(expected.ModelSha256, actual.ModelSha256);
        Assert.Equal(sha, actual.ModelSha256);
        Assert.Equal(expected.Participants, actual.Participants);
        Assert.Null(fromStream.FindModel(2));
    }

    [Fact]
    public void CompleteRoundWithModel_FromStreamWrongOrShortBytes_RefusedNamingTheProblemAndNothingWritten()
    {
        using AggregatorStore store = Open();
        long round = store.BeginRound("{}");
        (byte[] bytes, string sha) = Model(50_000, 12);
        byte[] flipped = (byte[])bytes.Clone();
        flipped[123_456] ^= 0x01;

        var wrong = Assert.Throws<InvalidDataException>(() => store.CompleteRoundWithModel(round, 1, new MemoryStream(flipped), sha, ["a"], moments: null));
        var shorter = Assert.Throws<InvalidDataException>(() => store.CompleteRoundWithModel(round, 1, new ShortReadStream(bytes, 150_000), sha, ["a"], moments: null));
        var odd = Assert.Throws<InvalidDataException>(() => store.CompleteRoundWithModel(round, 1, new MemoryStream(bytes[..^1]), sha, ["a"], moments: null));
        var moments = Assert.Throws<ArgumentException>(() => store.CompleteRoundWithModel(round, 1, new MemoryStream(bytes), sha, ["a"], new ServerOptimizerMoments("momentum", 1, new double[49_999], Array.Empty<double>())));

        Assert.Contains($"model version 1 of '{store.Path}' hash to SHA-256", wrong.Message, StringComparison.Ordinal);
        Assert.Contains($"not the given {sha}; nothing was written", wrong.Message, StringComparison.Ordinal);
        Assert.Contains("end after 150000 of the 200000 bytes announced; nothing was written", shorter.Message, StringComparison.Ordinal);
        Assert.Contains("199999 bytes, not a positive multiple of 4", odd.Message, StringComparison.Ordinal);
        Assert.Contains("49999", moments.Message, StringComparison.Ordinal);
        Assert.Equal(RoundStatus.Running, store.GetRound(round)!.Status); // the round's completion was rolled back with the model
        Assert.Null(store.LatestModel());

        store.CompleteRoundWithModel(round, 1, new MemoryStream(bytes), sha, ["a"], moments: null);
        Assert.Equal(bytes, store.LoadModel(1));
    }

    [Fact]
    public void SaveModel_FromStream_StoredBitForBitAndWrongDigestRefused()
    {
        using AggregatorStore store = Open();
        (byte[] bytes, string sha) = Model(40_000, 13);

        var wrong = Assert.Throws<InvalidDataException>(() => store.SaveModel(0, 0, new MemoryStream(bytes), new string('0', 64)));
        Assert.Contains("nothing was written", wrong.Message, StringComparison.Ordinal);
        Assert.Null(store.LatestModel());

        store.SaveModel(0, 0, new MemoryStream(bytes), sha);
        Assert.Equal(bytes, store.LoadModel(0));
        Assert.Equal(sha, store.FindModel(0)!.Sha256);
        using Stream opened = store.OpenModel(0);
        Assert.Equal(bytes.Length, opened.Length);
    }

    /// <summary>A seekable stream that reports the whole length but ends after <c>limit</c> bytes (a file cut short under the reader).</summary>
    private sealed class ShortReadStream(byte[] bytes, int limit) : MemoryStream(bytes)
    {
        public override int Read(byte[] buffer, int offset, int count) =>
            base.Read(buffer, offset, (int)Math.Max(0, Math.Min(count, limit - Position)));
    }

    [Fact]
    public void Dispose_ThenUse_ThrowsObjectDisposed()
    {
        AggregatorStore store = Open();
        store.Dispose();

        Assert.Throws<ObjectDisposedException>(() => store.ListRounds());
    }

    private static string[] Describe(IReadOnlyList<RoundRecord> rounds) =>
        [.. rounds.Select(r => string.Join("|", r.Round, r.Status, r.ConfigurationJson, r.StartedUtc.ToString("O"), r.EndedUtc?.ToString("O"), r.ModelSha256, r.AbortReason,
            string.Join(",", r.Participants), string.Join(";", r.Stages.Select(s => $"{s.Stage}:{string.Join(",", s.Participants)}:{s.RecordedUtc:O}"))))];
}
