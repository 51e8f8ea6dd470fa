using System.Security.Cryptography;

using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;

using SecureFed.Aggregator.Persistence;

namespace SecureFed.Federation.Tests.Persistence;

/// <summary>
/// Model-version retention in the round store (<c>SecureFed:KeepModelVersions</c>): the transaction that stores a
/// round's model deletes the versions older than the newest N, never the latest or a running round's base, and what it keeps
/// reopens and restores bit for bit.
/// </summary>
public sealed class ModelRetentionTests : IDisposable
{
    private const int Floats = 5_000;

    private readonly TempDirectory _dir = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 2, 8, 0, 0, TimeSpan.Zero));
    private readonly Dictionary<long, (byte[] Bytes, string Sha)> _written = [];

    private string DbPath => _dir.Combine("data", "aggregator.db");

    public void Dispose() => _dir.Dispose();

    private AggregatorStore Open() => AggregatorStore.Open(DbPath, _time);

    private (byte[] Bytes, string Sha) Model(long version)
    {
        byte[] bytes = new byte[Floats * sizeof(float)];
        new Random((int)version + 100).NextBytes(bytes);
        (byte[], string) model = (bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)));
        _written[version] = model;
        return model;
    }

    /// <summary>Stores version 0, then completes rounds 1..<paramref name="rounds"/> keeping <paramref name="keep"/>; returns each round's pruned versions.</summary>
    private List<IReadOnlyList<ModelRecord>> Run(AggregatorStore store, int rounds, int keep, int firstVersion = 1)
    {
        if (firstVersion == 1)
        {
            (byte[] initial, string initialSha) = Model(0);
            store.SaveModel(0, 0, initial, initialSha);
        }

        var pruned = new List<IReadOnlyList<ModelRecord>>();
        for (int v = firstVersion; v < firstVersion + rounds; v++)
        {
            long round = store.BeginRound($$"""{"model_version":{{v - 1}}}""");
            (byte[] bytes, string sha) = Model(v);
            pruned.Add(v % 2 == 0
                ? store.CompleteRoundWithModel(round, v, bytes, sha, ["site-a", "site-b"], moments: null, keep)
                : store.CompleteRoundWithModel(round, v, new MemoryStream(bytes), sha, ["site-a", "site-b"], moments: null, keep));
            _time.Advance(TimeSpan.FromMinutes(1));
        }

        return pruned;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void CompleteRoundWithModel_KeepN_KeepsExactlyTheNewestNAndReturnsThePrunedOldestFirst(int keep)
    {
        using AggregatorStore store = Open();
        (byte[] initial, string initialSha) = Model(0);
        store.SaveModel(0, 0, initial, initialSha);
        var everyPruned = new List<ModelRecord>();
        for (long v = 1; v <= 6; v++)
        {
            IReadOnlyList<ModelRecord> before = store.ListModels();
            long round = store.BeginRound("{}");
            (byte[] bytes, string sha) = Model(v);

            IReadOnlyList<ModelRecord> pruned = store.CompleteRoundWithModel(round, v, new MemoryStream(bytes), sha, ["site-a"], moments: null, keep);

            long[] expected = [.. Enumerable.Range(0, (int)v + 1).Select(i => (long)i).TakeLast(keep)];
            Assert.Equal(expected, store.ListModels().Select(m => m.Version));
            Assert.Equal(before.Where(m => !expected.Contains(m.Version)), pruned); // the records as stored, oldest first
            everyPruned.AddRange(pruned);
        }

        Assert.Equal(Enumerable.Range(0, 7 - keep).Select(i => (long)i), everyPruned.Select(m => m.Version));
        Assert.All(everyPruned, m => Assert.Equal(_written[m.Version].Sha, m.Sha256));
        Assert.All(everyPruned, m => Assert.Null(store.LoadModel(m.Version)));
        Assert.Equal(6, store.LatestModel()!.Version);
        Assert.Empty(store.QuickCheck());
    }

    [Fact]
    public void CompleteRoundWithModel_KeepZero_KeepsEveryVersion()
    {
        using AggregatorStore store = Open();

        List<IReadOnlyList<ModelRecord>> pruned = Run(store, rounds: 4, keep: 0);

        Assert.All(pruned, Assert.Empty);
        Assert.Equal([0L, 1L, 2L, 3L, 4L], store.ListModels().Select(m => m.Version));
        long round = store.BeginRound("{}");
        (byte[] bytes, string sha) = Model(5);
        store.CompleteRoundWithModel(round, 5, bytes, sha, ["a"]);
        Assert.Equal(6, store.ListModels().Count);
    }

    [Fact]
    public void CompleteRoundWithModel_NegativeKeep_RefusedAndNothingWritten()
    {
        using AggregatorStore store = Open();
        Run(store, rounds: 2, keep: 0);
        long round = store.BeginRound("{}");
        (byte[] bytes, string sha) = Model(3);

        Assert.Throws<ArgumentOutOfRangeException>(() => store.CompleteRoundWithModel(round, 3, bytes, sha, ["a"], moments: null, keepModelVersions: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.CompleteRoundWithModel(round, 3, new MemoryStream(bytes), sha, ["a"], moments: null, keepModelVersions: -1));

        Assert.Equal([0L, 1L, 2L], store.ListModels().Select(m => m.Version));
        Assert.Equal(RoundStatus.Running, store.GetRound(round)!.Status);
    }

    [Fact]
    public void CompleteRoundWithModel_RefusedModel_PrunesNothing()
    {
        // The prune is part of the commit: a commit that fails (here: bytes that do not hash to the digest) deletes nothing.
        using AggregatorStore store = Open();
        Run(store, rounds: 3, keep: 0);
        long round = store.BeginRound("{}");
        (byte[] bytes, _) = Model(4);

        Assert.Throws<InvalidDataException>(() => store.CompleteRoundWithModel(round, 4, new MemoryStream(bytes), new string('0', 64), ["a"], moments: null, keepModelVersions: 1));

        Assert.Equal([0L, 1L, 2L, 3L], store.ListModels().Select(m => m.Version));
        Assert.Equal(RoundStatus.Running, store.GetRound(round)!.Status);
        Assert.All(store.ListModels(), m => Assert.Equal(_written[m.Version].Bytes, store.LoadModel(m.Version)));
    }

    [Fact]
    public void CompleteRoundWithModel_KeepOneWithMoments_TheNewVersionAndItsMomentsStay()
    {
        using AggregatorStore store = Open();
        Run(store, rounds: 2, keep: 0);
        long round = store.BeginRound("{}");
        (byte[] bytes, string sha) = Model(3);
        double[] first = [.. Enumerable.Range(0, Floats).Select(i => i * 1e-4)];
        double[] second = [.. Enumerable.Range(0, Floats).Select(i => i * 1e-8)];

        IReadOnlyList<ModelRecord> pruned = store.CompleteRoundWithModel(round, 3, bytes, sha, ["a"], new ServerOptimizerMoments("adam", 3, first, second), keepModelVersions: 1);

        Assert.Equal([0L, 1L, 2L], pruned.Select(m => m.Version));
        Assert.Equal(3, Assert.Single(store.ListModels()).Version);
        SavedServerOptimizer moments = store.LoadServerOptimizer()!;
        Assert.Equal(3, moments.ModelVersion);
        Assert.Equal(first, moments.First);
        Assert.Equal(second, moments.Second);
    }

    [Fact]
    public void CompleteRoundWithModel_BaseOfARunningRound_NeverPruned()
    {
        // One round runs at a time, so the guard is arranged by hand: round 2 (base version 1) is made to look still
        // running while round 4 completes with version 4 and KeepModelVersions = 1.
        using (AggregatorStore store = Open())
        {
            Run(store, rounds: 3, keep: 0);
        }

        using (var raw = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            raw.Open();
            using SqliteCommand arrange = raw.CreateCommand();
            arrange.CommandText = """
                UPDATE rounds SET status = 'running', ended_utc = NULL WHERE round = 2;
                INSERT INTO rounds (round, status, configuration, started_utc, participants) VALUES (4, 'running', '{"model_version":3}', '2026-12-02T09:00:00.0000000Z', '[]');
                """;
            arrange.ExecuteNonQuery();
        }

        using AggregatorStore reopened = Open();
        const long round = 4;
        (byte[] bytes, string sha) = Model(4);
        IReadOnlyList<ModelRecord> pruned = reopened.CompleteRoundWithModel(round, 4, bytes, sha, ["a"], moments: null, keepModelVersions: 1);

        Assert.Equal([0L, 2L, 3L], pruned.Select(m => m.Version));
        Assert.Equal([1L, 4L], reopened.ListModels().Select(m => m.Version));
        Assert.Equal(_written[1].Bytes, reopened.LoadModel(1));
    }

    [Fact]
    public void OpenModel_DownloadInFlightWhenItsVersionIsPruned_NextReadFailsNamingTheRemoval()
    {
        // A download holds no read transaction between reads (ModelBlobStream), so it cannot keep a pruned version alive;
        // an agent only downloads the version its round starts from, which is never pruned while the round runs.
        using AggregatorStore store = Open();
        Run(store, rounds: 2, keep: 0);
        using Stream download = store.OpenModel(2);
        byte[] head = new byte[1_000];
        download.ReadExactly(head);
        Assert.Equal(_written[2].Bytes.AsSpan(0, 1_000).ToArray(), head);

        Run(store, rounds: 2, keep: 1, firstVersion: 3);

        Assert.Equal([4L], store.ListModels().Select(m => m.Version));
        var removed = Assert.Throws<InvalidOperationException>(() => download.ReadExactly(new byte[1_000]));
        Assert.Contains("Model version 2 is no longer in", removed.Message, StringComparison.Ordinal);
        Assert.Contains("SecureFed:KeepModelVersions", removed.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => store.OpenModel(2)); // a new download of it finds nothing
    }

    [Fact]
    public void OpenModel_DownloadStalledMidway_HoldsNoSnapshotSoTheLogIsTruncated()
    {
        // A site that starts a download and stops reading must not pin the write-ahead log: every later version would stay
        // in it until the disk filled.
        using AggregatorStore store = Open();
        Run(store, rounds: 2, keep: 0);
        using Stream download = store.OpenModel(2);
        byte[] head = new byte[1_000];
        download.ReadExactly(head);

        Run(store, rounds: 3, keep: 0, firstVersion: 3);
        using (var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DbPath, Pooling = false }.ConnectionString))
        {
            connection.Open();
            using SqliteCommand checkpoint = connection.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
            using SqliteDataReader result = checkpoint.ExecuteReader();
            Assert.True(result.Read());
            Assert.Equal(0L, result.GetInt64(0)); // not busy: no reader holds an old snapshot
        }

        Assert.Equal(0L, new FileInfo(DbPath + "-wal").Length);

        // The download goes on where it stopped, every byte of its version.
        using var rest = new MemoryStream();
        download.CopyTo(rest);
        byte[] read = [.. head, .. rest.ToArray()];
        Assert.Equal(_written[2].Bytes, read);
    }

    [Fact]
    public void Reopen_StorePrunedAfterRowsSavedWithoutRetention_KeptVersionsAndRecordsEqualBitForBit()
    {
        // Rows saved before retention existed (every version kept), then KeepModelVersions = 2 from round 5 on.
        IReadOnlyList<ModelRecord> kept;
        using (AggregatorStore store = Open())
        {
            Run(store, rounds: 4, keep: 0);
            IReadOnlyList<ModelRecord> all = store.ListModels();
            List<IReadOnlyList<ModelRecord>> pruned = Run(store, rounds: 2, keep: 2, firstVersion: 5);
            Assert.Equal([0L, 1L, 2L, 3L], pruned[0].Select(m => m.Version));
            Assert.Equal([4L], pruned[1].Select(m => m.Version));
            Assert.Equal(all.Take(5), [.. pruned[0], .. pruned[1]]);
            kept = store.ListModels();
        }

        using AggregatorStore reopened = Open();
        Assert.Equal(kept, reopened.ListModels());
        Assert.Equal([5L, 6L], reopened.ListModels().Select(m => m.Version));
        foreach (ModelRecord model in kept)
        {
            Assert.Equal(_written[model.Version].Bytes, reopened.LoadModel(model.Version));
        }

        Assert.Equal(6, reopened.LatestModel()!.Version);
        Assert.Equal(6, reopened.ListRounds().Count(r => r.Status == RoundStatus.Completed));
        Assert.Empty(reopened.QuickCheck());

        // A copy without model bytes (what the cluster's coordinator saves) lists, and takes back, only the kept versions.
        string copyPath = _dir.Combine("copy", "aggregator.db");
        Directory.CreateDirectory(Path.GetDirectoryName(copyPath)!);
        Assert.Equal(kept, reopened.SnapshotWithoutModelBytesTo(copyPath));
        using AggregatorStore copy = AggregatorStore.Open(copyPath, _time);
        Assert.Equal(kept, copy.ListModelsWithoutBytes());
        foreach (ModelRecord model in kept)
        {
            using Stream source = reopened.OpenModel(model.Version);
            copy.WriteModelBytes(model.Version, source);
        }

        Assert.Equal(kept, copy.ListModels());
        Assert.All(kept, m => Assert.Equal(_written[m.Version].Bytes, copy.LoadModel(m.Version)));

        // The next version continues from the latest; a pruned number is never reused.
        long round = reopened.BeginRound("{}");
        (byte[] bytes, string sha) = Model(4);
        Assert.Throws<InvalidOperationException>(() => reopened.CompleteRoundWithModel(round, 4, bytes, sha, ["a"], moments: null, keepModelVersions: 2));
    }
}
