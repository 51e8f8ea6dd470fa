using System.Security.Cryptography;

using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;

using SecureFed.Aggregator.Persistence;

namespace SecureFed.Federation.Tests.Persistence;

/// <summary>
/// The round store's file size: a new store uses incremental auto-vacuum and gives the pages of pruned model versions
/// back to the file system; a store created before it (auto-vacuum off) keeps working and reuses them, until
/// <see cref="AggregatorStore.Compact"/> rebuilds it, every kept byte as it was.
/// </summary>
public sealed class StoreSpaceTests : IDisposable
{
    /// <summary>4 MiB per model version.</summary>
    private const int Floats = 1 << 20;

    private const int ModelBytes = Floats * sizeof(float);

    /// <summary>What a store holds beyond its kept model bytes: the other tables, SQLite's page and pointer-map overhead.</summary>
    private const long Slack = 512 * 1024;

    private readonly TempDirectory _dir = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 2, 8, 0, 0, TimeSpan.Zero));
    private readonly Dictionary<long, (byte[] Bytes, string Sha)> _written = [];

    private string DbPath => _dir.Combine("data", "aggregator.db");

    public void Dispose() => _dir.Dispose();

    private AggregatorStore Open() => AggregatorStore.Open(DbPath, _time);

    private long FileBytes => new FileInfo(DbPath).Length;

    private (byte[] Bytes, string Sha) Model(long version)
    {
        byte[] bytes = new byte[ModelBytes];
        new Random((int)version + 7).NextBytes(bytes);
        (byte[], string) model = (bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)));
        _written[version] = model;
        return model;
    }

    /// <summary>Stores version 0 (when <paramref name="firstVersion"/> is 1), then one round per version, each with a ledger entry.</summary>
    private void Run(AggregatorStore store, int rounds, int keep, int firstVersion = 1)
    {
        if (firstVersion == 1)
        {
            (byte[] initial, string initialSha) = Model(0);
            store.SaveModel(0, 0, initial, initialSha);
        }

        for (int v = firstVersion; v < firstVersion + rounds; v++)
        {
            long round = store.BeginRound($$"""{"model_version":{{v - 1}}}""");
            store.RecordStage(round, "mask", ["site-a", "site-b"]);
            (byte[] bytes, string sha) = Model(v);
            store.CompleteRoundWithModel(round, v, new MemoryStream(bytes), sha, ["site-a", "site-b"], moments: null, keep);
            store.AppendLedger(round, "privacy", $$"""{"rho":0.{{v}}}""");
            _time.Advance(TimeSpan.FromMinutes(1));
        }
    }

    private long Pragma(string name)
    {
        using var raw = new SqliteConnection($"Data Source={DbPath};Mode=ReadOnly;Pooling=False");
        raw.Open();
        using SqliteCommand cmd = raw.CreateCommand();
        cmd.CommandText = $"PRAGMA {name};";
        return (long)cmd.ExecuteScalar()!;
    }

    /// <summary>A store file as versions before incremental auto-vacuum made it: WAL first, then the first table (auto-vacuum off).</summary>
    private void CreateWithoutAutoVacuum()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(DbPath)!);
        using var raw = new SqliteConnection($"Data Source={DbPath};Pooling=False");
        raw.Open();
        using SqliteCommand cmd = raw.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL; CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_utc TEXT NOT NULL);";
        cmd.ExecuteNonQuery();
    }

    [Fact]
    public void Open_NewFile_IncrementalAutoVacuumInWalMode()
    {
        using AggregatorStore store = Open();

        Assert.True(store.ReleasesFreePages);
        Assert.Equal(2, Pragma("auto_vacuum")); // 2: incremental
        Assert.Equal(0, store.FreeBytes());
        using var raw = new SqliteConnection($"Data Source={DbPath};Mode=ReadOnly;Pooling=False");
        raw.Open();
        using SqliteCommand cmd = raw.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode;";
        Assert.Equal("wal", (string)cmd.ExecuteScalar()!);

        // The copy the cluster's coordinator saves, restored as a store elsewhere, is a new file too.
        string copyPath = _dir.Combine("copy", "aggregator.db");
        Directory.CreateDirectory(Path.GetDirectoryName(copyPath)!);
        store.SnapshotWithoutModelBytesTo(copyPath);
        using AggregatorStore copy = AggregatorStore.Open(copyPath, _time);
        Assert.True(copy.ReleasesFreePages);
    }

    [Fact]
    public void ReleaseFreePages_AfterPruningLargeVersions_FileShrinksToAboutTheKeptBytes()
    {
        using AggregatorStore store = Open();
        Run(store, rounds: 4, keep: 0); // versions 0-4, 20 MiB
        long before = FileBytes;
        Assert.True(before >= 5L * ModelBytes, $"{before} bytes before pruning");

        Run(store, rounds: 1, keep: 1, firstVersion: 5); // prunes 0-4
        long freed = store.FreeBytes();
        long released = store.ReleaseFreePages();
        long after = FileBytes;

        Assert.Equal([5L], store.ListModels().Select(m => m.Version));
        Assert.True(freed >= 5L * ModelBytes, $"{freed} bytes free after pruning");
        Assert.Equal(freed, released);
        Assert.Equal(0, store.FreeBytes());
        Assert.True(after <= ModelBytes + Slack, $"{after} bytes after pruning, {ModelBytes} kept"); // was ≥ 5 models
        Assert.Equal(0, new FileInfo(DbPath + "-wal").Length); // and the write-ahead log truncated (no reader)
        Assert.Equal(_written[5].Bytes, store.LoadModel(5));
        Assert.Empty(store.QuickCheck());

        // Round after round keeping one, the file stays at about one model.
        Run(store, rounds: 2, keep: 1, firstVersion: 6);
        store.ReleaseFreePages();
        Assert.True(FileBytes <= ModelBytes + Slack, $"{FileBytes} bytes after two more rounds");
        Assert.Equal(_written[7].Bytes, store.LoadModel(7));
    }

    [Fact]
    public void Compact_StoreWithoutAutoVacuum_OpensPrunesThenCompactsKeepingEveryByte()
    {
        // Arrange: a store made the old way runs as before: rounds, pruning, no space given back.
        CreateWithoutAutoVacuum();
        IReadOnlyList<ModelRecord> kept;
        IReadOnlyList<RoundRecord> rounds;
        IReadOnlyList<LedgerEntry> ledger;
        using (AggregatorStore store = Open())
        {
            Assert.False(store.ReleasesFreePages);
            Run(store, rounds: 4, keep: 0);
            Run(store, rounds: 1, keep: 2, firstVersion: 5);
            Assert.Equal(0, store.ReleaseFreePages()); // nothing to do without auto-vacuum: the pages are reused
            Assert.True(store.FreeBytes() >= 4L * ModelBytes);
            kept = store.ListModels();
            Assert.Equal([4L, 5L], kept.Select(m => m.Version));
            Assert.All(kept, m => Assert.Equal(_written[m.Version].Bytes, store.LoadModel(m.Version)));
            rounds = store.ListRounds();
            ledger = store.ListLedger();
        }

        Assert.Equal(0, Pragma("auto_vacuum"));
        long before = FileBytes;
        Assert.True(before >= 6L * ModelBytes, $"{before} bytes before compacting");

        // Act
        StoreCompaction result = AggregatorStore.Compact(DbPath);

        // Assert: smaller, incremental, every row as it was.
        Assert.Equal(Path.GetFullPath(DbPath), result.Path);
        Assert.False(result.WasIncremental);
        Assert.True(result.BytesBefore >= before);
        Assert.Equal(FileBytes, result.BytesAfter); // the write-ahead log is checkpointed and gone
        Assert.True(result.BytesAfter <= 2L * ModelBytes + Slack, $"{result.BytesAfter} bytes after compacting, {2 * ModelBytes} kept");
        Assert.Equal(2, Pragma("auto_vacuum"));
        using AggregatorStore compacted = Open();
        Assert.True(compacted.ReleasesFreePages);
        Assert.Equal(0, compacted.FreeBytes());
        Assert.Equal(kept, compacted.ListModels());
        foreach (ModelRecord model in kept)
        {
            byte[] bytes = compacted.LoadModel(model.Version)!;
            Assert.Equal(_written[model.Version].Sha, Convert.ToHexStringLower(SHA256.HashData(bytes)));
            Assert.Equal(model.Sha256, Convert.ToHexStringLower(SHA256.HashData(bytes)));
        }

        Assert.Equal(rounds.Count, compacted.ListRounds().Count);
        Assert.Equal(rounds.Select(r => (r.Round, r.Status, r.ModelSha256, r.EndedUtc)), compacted.ListRounds().Select(r => (r.Round, r.Status, r.ModelSha256, r.EndedUtc)));
        Assert.Equal(rounds.SelectMany(r => r.Stages), compacted.ListRounds().SelectMany(r => r.Stages), new StageComparer());
        Assert.Equal(ledger, compacted.ListLedger());
        Assert.Empty(compacted.QuickCheck());

        // From now on pruning gives its pages back.
        Run(compacted, rounds: 1, keep: 1, firstVersion: 6);
        Assert.InRange(compacted.ReleaseFreePages(), 2L * ModelBytes, 2L * ModelBytes + Slack); // versions 4 and 5
        Assert.True(FileBytes <= ModelBytes + Slack, $"{FileBytes} bytes after the next pruned round");
    }

    [Fact]
    public void Compact_StoreOpenElsewhere_RefusedAndNothingChanged()
    {
        using AggregatorStore store = Open();
        Run(store, rounds: 1, keep: 0);

        var error = Assert.Throws<IOException>(() => AggregatorStore.Compact(DbPath));

        Assert.Contains($"'{Path.GetFullPath(DbPath)}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("another process has it open", error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", error.Message, StringComparison.Ordinal);
        Run(store, rounds: 1, keep: 0, firstVersion: 2); // still the open store's, and writable
        Assert.Equal([0L, 1L, 2L], store.ListModels().Select(m => m.Version));
    }

    [Fact]
    public void Compact_MissingFile_RefusedNamingItAndNothingCreated()
    {
        var error = Assert.Throws<FileNotFoundException>(() => AggregatorStore.Compact(DbPath));

        Assert.Contains($"'{Path.GetFullPath(DbPath)}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(DbPath));
    }

    [Fact]
    public void Compact_CorruptFile_RefusedNamingItAndLeftUntouched()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(DbPath)!);
        byte[] garbage = new byte[8192];
        new Random(3).NextBytes(garbage);
        File.WriteAllBytes(DbPath, garbage);

        var error = Assert.Throws<InvalidDataException>(() => AggregatorStore.Compact(DbPath));

        Assert.Contains($"'{Path.GetFullPath(DbPath)}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("corrupt or not an SQLite database", error.Message, StringComparison.Ordinal);
        Assert.Equal(garbage, File.ReadAllBytes(DbPath));
    }

    private sealed class StageComparer : IEqualityComparer<StageRecord>
    {
        public bool Equals(StageRecord? x, StageRecord? y) =>
            x is not null && y is not null && x.Stage == y.Stage && x.RecordedUtc == y.RecordedUtc && x.Participants.SequenceEqual(y.Participants);

        public int GetHashCode(StageRecord obj) => obj.Stage.GetHashCode(StringComparison.Ordinal);
    }
}
