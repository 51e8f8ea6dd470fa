using System.Security.Cryptography;

using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;

using SecureFed.Aggregator.Persistence;

namespace SecureFed.Federation.Tests.Persistence;

/// <summary>
/// The sites found at fault in the round store (<c>site_exclusions</c>, schema version 4): rows written in one
/// transaction survive a reopen and a snapshot (what the cluster's coordinator saves), out-of-range rows are refused, and
/// a database of schema version 3 gains the table without losing anything it holds.
/// </summary>
public sealed class SiteExclusionStoreTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 3, 9, 0, 0, TimeSpan.Zero));

    private string DbPath => _dir.Combine("data", "aggregator.db");

    public void Dispose() => _dir.Dispose();

    private AggregatorStore Open() => AggregatorStore.Open(DbPath, _time);

    [Fact]
    public void SaveExclusions_ThenReopen_EveryRowAsLastWritten()
    {
        using (AggregatorStore store = Open())
        {
            store.SaveExclusions([new SiteExclusionRecord("site-x", 3, 1, 4), new SiteExclusionRecord("site-b", 1, 1, 2)]);
            store.SaveExclusions([new SiteExclusionRecord("site-x", 2, 1, 4)]);      // an attempt opened without it
            store.SaveExclusions([new SiteExclusionRecord("site-b", 0, 1, 2)]);      // served: the blame count stays
            store.SaveExclusions([]);
        }

        using AggregatorStore reopened = Open();
        Assert.Equal(
            [new SiteExclusionRecord("site-b", 0, 1, 2), new SiteExclusionRecord("site-x", 2, 1, 4)],
            reopened.ListExclusions());
    }

    [Theory]
    [InlineData("site-x", -1, 1, 4)]
    [InlineData("site-x", 3, 0, 4)]
    [InlineData("site-x", 3, 1, 0)]
    [InlineData(" ", 3, 1, 4)]
    public void SaveExclusions_OutOfRange_RefusedAndNothingWritten(string site, long left, long count, long round)
    {
        using AggregatorStore store = Open();

        var ex = Assert.Throws<ArgumentException>(() => store.SaveExclusions([new SiteExclusionRecord("site-a", 1, 1, 1), new SiteExclusionRecord(site, left, count, round)]));

        Assert.Contains("nothing was written", ex.Message, StringComparison.Ordinal);
        Assert.Empty(store.ListExclusions());
    }

    [Fact]
    public void SnapshotWithoutModelBytesTo_CarriesTheExclusions()
    {
        string copy = _dir.Combine("copy", "aggregator.db");
        Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
        using (AggregatorStore store = Open())
        {
            store.SaveExclusions([new SiteExclusionRecord("site-x", 5, 2, 7)]);
            store.SnapshotWithoutModelBytesTo(copy);
        }

        using AggregatorStore restored = AggregatorStore.Open(copy, _time);
        Assert.Equal([new SiteExclusionRecord("site-x", 5, 2, 7)], restored.ListExclusions());
    }

    [Fact]
    public void Open_SchemaVersion3_GainsTheExclusionTableKeepingRoundsAndModels()
    {
        // A database written by schema version 3 (before site_exclusions), with a round and a model.
        byte[] model = new byte[64];
        new Random(3).NextBytes(model);
        string sha = Convert.ToHexStringLower(SHA256.HashData(model));
        Directory.CreateDirectory(Path.GetDirectoryName(DbPath)!);
        using (var connection = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            connection.Open();
            using SqliteCommand cmd = connection.CreateCommand();
            cmd.CommandText = string.Concat(StoreSchema.Migrations.Take(3)) + """
                CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_utc TEXT NOT NULL);
                INSERT INTO schema_version (version, applied_utc) VALUES (1, '2026-11-01T00:00:00.0000000Z'), (2, '2026-11-02T00:00:00.0000000Z'), (3, '2026-11-03T00:00:00.0000000Z');
                INSERT INTO federation (id, name, created_utc) VALUES (1, 'fed', '2026-11-01T00:00:00.0000000Z');
                INSERT INTO rounds (round, status, configuration, started_utc, ended_utc, model_sha256, abort_reason, participants)
                    VALUES (1, 'aborted', '{}', '2026-11-03T00:00:00.0000000Z', '2026-11-03T00:01:00.0000000Z', NULL, 'site ''site-x'' sent an invalid envelope', '[]');
                INSERT INTO models (version, round, sha256, size_bytes, created_utc, bytes) VALUES (0, NULL, $sha, $n, '2026-11-01T00:00:00.0000000Z', $bytes);
                """;
            cmd.Parameters.AddWithValue("$sha", sha);
            cmd.Parameters.AddWithValue("$n", (long)model.Length);
            cmd.Parameters.AddWithValue("$bytes", model);
            cmd.ExecuteNonQuery();
        }

        using (AggregatorStore store = Open())
        {
            Assert.Equal(4, AggregatorStore.SchemaVersion);
            Assert.Empty(store.ListExclusions());
            Assert.Equal("fed", store.FederationName);
            RoundRecord round = Assert.Single(store.ListRounds());
            Assert.Equal((RoundStatus.Aborted, "site 'site-x' sent an invalid envelope"), (round.Status, round.AbortReason));
            Assert.Equal(model, store.LoadModel(0));
            store.SaveExclusions([new SiteExclusionRecord("site-x", 3, 1, 1)]);
        }

        using AggregatorStore reopened = Open();
        Assert.Equal([new SiteExclusionRecord("site-x", 3, 1, 1)], reopened.ListExclusions());
        Assert.Equal(model, reopened.LoadModel(0));
        Assert.Empty(reopened.QuickCheck());
    }
    [Fact]
    public void ClearExclusion_StoppedStore_ThatRowGoneTheOthersKept()
    {
        using (AggregatorStore store = Open())
        {
            store.SaveExclusions([new SiteExclusionRecord("site-x", 6, 2, 9), new SiteExclusionRecord("site-b", 0, 1, 2)]);
        }

        SiteExclusionRecord removed = AggregatorStore.ClearExclusion(DbPath, "site-x");

        Assert.Equal(new SiteExclusionRecord("site-x", 6, 2, 9), removed);
        Assert.Equal([new SiteExclusionRecord("site-b", 0, 1, 2)], AggregatorStore.ReadExclusions(DbPath));
        using AggregatorStore reopened = Open();
        Assert.Equal([new SiteExclusionRecord("site-b", 0, 1, 2)], reopened.ListExclusions());
    }

    [Fact]
    public void ClearExclusion_SiteWithoutARow_RefusedListingTheSitesKeptAndNothingChanged()
    {
        using (AggregatorStore store = Open())
        {
            store.SaveExclusions([new SiteExclusionRecord("site-x", 3, 1, 4)]);
        }

        var error = Assert.Throws<KeyNotFoundException>(() => AggregatorStore.ClearExclusion(DbPath, "site-y"));

        Assert.Contains("no exclusion of site 'site-y' (it keeps: site-x)", error.Message, StringComparison.Ordinal);
        Assert.Contains("nothing was changed", error.Message, StringComparison.Ordinal);
        Assert.Equal([new SiteExclusionRecord("site-x", 3, 1, 4)], AggregatorStore.ReadExclusions(DbPath));
    }

    [Fact]
    public void ClearExclusion_StoreOpenElsewhere_RefusedAndTheRowKept()
    {
        using AggregatorStore store = Open();
        store.SaveExclusions([new SiteExclusionRecord("site-x", 3, 1, 4)]);

        var error = Assert.Throws<IOException>(() => AggregatorStore.ClearExclusion(DbPath, "site-x"));
        var read = Assert.Throws<IOException>(() => AggregatorStore.ReadExclusions(DbPath));

        Assert.Contains("another process has it open", error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", error.Message, StringComparison.Ordinal);
        Assert.Contains("another process has it open", read.Message, StringComparison.Ordinal);
        Assert.Equal([new SiteExclusionRecord("site-x", 3, 1, 4)], store.ListExclusions());
    }

    [Theory]
    [InlineData("read")]
    [InlineData("clear")]
    [InlineData("compact")]
    public void StoppedStoreCommands_EmptyFile_RefusedAndTheFileStaysEmpty(string command)
    {
        // 'aggregator exclusions' on a 0-byte aggregator.db said "it was left untouched" of a file it had just turned into
        // a 4,096-byte SQLite database (its exclusive lock wrote a header).
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(DbPath))!);
        File.WriteAllBytes(DbPath, []);

        var error = Assert.Throws<InvalidDataException>(() =>
        {
            switch (command)
            {
                case "read": AggregatorStore.ReadExclusions(DbPath); break;
                case "clear": AggregatorStore.ClearExclusion(DbPath, "site-x"); break;
                default: AggregatorStore.Compact(DbPath); break;
            }
        });

        Assert.Contains("the file is empty (0 bytes)", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, new FileInfo(DbPath).Length);
    }

    [Fact]
    public void ClearExclusion_MissingFile_RefusedNamingItAndNothingCreated()
    {
        var error = Assert.Throws<FileNotFoundException>(() => AggregatorStore.ClearExclusion(DbPath, "site-x"));

        Assert.Contains(Path.GetFullPath(DbPath), error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(DbPath));
    }
}
