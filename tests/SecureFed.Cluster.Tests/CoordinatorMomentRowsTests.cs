using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Cluster.Lease;
using SecureFed.Protocol;

using static SecureFed.Cluster.Tests.CoordinatorStateTesting;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The server update rule's moments (momentum, adam) in the cluster's database (a throw-away PostgreSQL): saved apart
/// from the round store, once per model version, under the lease's epoch; a coordinator that takes over between rounds
/// restores them bit for bit, and its next models equal an uninterrupted aggregator's bit for bit; moments that are
/// missing, go with another model version, say another step count or are corrupt fail the takeover naming both sides,
/// the successor's data directory left as it was.
/// </summary>
public sealed class CoordinatorMomentRowsTests : IClassFixture<PostgresServer>, IDisposable
{
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private readonly PostgresServer _postgres;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "securefed-moment-rows-" + Guid.NewGuid().ToString("N"));

    public CoordinatorMomentRowsTests(PostgresServer postgres)
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

    [SkippableTheory]
    [InlineData("adam")]
    [InlineData("momentum")]
    public async Task TakeOver_BetweenRounds_MomentsSentOnceRestoredBitForBitAndLaterModelsEqualUninterrupted(string rule)
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        string name = "moments-" + rule;
        await using var federation = new FrontFederation(Path.Combine(_directory, rule), name, Sites);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, name);
        AggregatorOptions reference = Options(federation, rule, "reference-data");
        AggregatorOptions optionsA = Options(federation, rule, "silo-a-data");
        AggregatorOptions optionsB = Options(federation, rule, "silo-b-data");
        UpdateCodec codec = Codec();

        // The uninterrupted aggregator: four rounds on the same sums, one process, one optimizer.
        using (AggregatorState single = AggregatorState.Open(reference))
        {
            for (int round = 1; round <= 4; round++)
            {
                RunRound(single, codec, round);
            }
        }

        // Silo A coordinates rounds 1 and 2, each saved at its commit point, then dies between rounds.
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);
        SavedServerOptimizer savedByA;
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            Assert.Empty(await MomentRowsAsync(db, name)); // no round yet: no moments
            for (int round = 1; round <= 2; round++)
            {
                RunRound(a, codec, round);
                await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
                Assert.Equal([(round, (long)round, 1L)], (await MomentRowsAsync(db, name)).Select(r => (r.Version, r.Steps, r.Epoch)));
            }

            // A commit point without a new model version (round 3 opened) does not send the moments again: the row is untouched.
            string rowVersion = (await MomentRowsAsync(db, name))[0].RowVersion;
            a.Store.BeginRound("{}");
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            Assert.Equal(rowVersion, (await MomentRowsAsync(db, name))[0].RowVersion);
            savedByA = a.Store.LoadServerOptimizer()!;
        }

        // The round store sent to the database says which moments go with model version 2 but holds none of their bytes.
        string sentStore = Path.Combine(federation.Directory, "sent-round-store.db");
        File.WriteAllBytes(sentStore, (await new PostgresCoordinatorState(db, lease).LoadAsync(CancellationToken.None).WaitAsync(WaitLimit))[CoordinatorSnapshot.RoundStoreName]);
        using (AggregatorStore sent = AggregatorStore.Open(sentStore))
        {
            Assert.Equal(new ServerOptimizerRecord(2, rule, 2, FrontFederation.Parameters, 0, 0), sent.ServerOptimizerMetadata());
        }

        // Silo B takes over: the moments of model version 2 bit for bit, then rounds 3 and 4 (the interrupted round 3 aborted).
        await ExpireAsync(db, name);
        var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
            keeperB, new PostgresCoordinatorState(db, lease), optionsB.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);
        Assert.Equal(2, fenceB.Epoch);
        using (AggregatorState b = AggregatorState.Open(optionsB))
        {
            Assert.Equal(2, b.ServerRule.Steps);
            Assert.Contains($"{rule} moments restored from model version 2 after 2 steps", b.ServerRule.History, StringComparison.Ordinal);
            SavedServerOptimizer restored = b.Store.LoadServerOptimizer()!;
            Assert.Equal(savedByA.ModelVersion, restored.ModelVersion);
            Assert.Equal(Bytes(savedByA.First), Bytes(restored.First));
            Assert.Equal(savedByA.Second is null ? null : Bytes(savedByA.Second), restored.Second is null ? null : Bytes(restored.Second));
            Assert.Equal(1, b.Store.AbortInterruptedRounds("the coordinator stopped while the round was open"));
            for (int round = 3; round <= 4; round++)
            {
                RunRound(b, codec, round);
                await fenceB.CommitAsync(b, CancellationToken.None).WaitAsync(WaitLimit);
            }

            Assert.Equal([(4L, 4L, 2L)], (await MomentRowsAsync(db, name)).Select(r => (r.Version, r.Steps, r.Epoch)));
        }

        // Every model version and the last moments equal the uninterrupted aggregator's, bit for bit.
        using AggregatorStore expected = AggregatorStore.Open(AggregatorState.StorePath(reference.DataDirectory));
        using AggregatorStore actual = AggregatorStore.Open(AggregatorState.StorePath(optionsB.DataDirectory));
        for (long version = 1; version <= 4; version++)
        {
            Assert.Equal(expected.LoadModel(version), actual.LoadModel(version));
        }

        Assert.NotEqual(expected.LoadModel(0), expected.LoadModel(4));
        SavedServerOptimizer want = expected.LoadServerOptimizer()!;
        SavedServerOptimizer got = actual.LoadServerOptimizer()!;
        Assert.Equal((want.ModelVersion, want.Kind, want.Steps), (got.ModelVersion, got.Kind, got.Steps));
        Assert.Equal(Bytes(want.First), Bytes(got.First));
        Assert.Equal(want.Second is null ? null : Bytes(want.Second), got.Second is null ? null : Bytes(got.Second));
    }

    [SkippableFact]
    public async Task TakeOver_MomentsMissingMismatchedOrCorrupt_RefusedNamingBothAndLocalDataUntouched()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Name = "moments-bad";
        await using var federation = new FrontFederation(Path.Combine(_directory, "bad"), Name, Sites);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Name);
        AggregatorOptions optionsA = Options(federation, "adam", "silo-a-data");
        AggregatorOptions optionsB = Options(federation, "adam", "silo-b-data");
        UpdateCodec codec = Codec();
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        await using (ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit))
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            for (int round = 1; round <= 2; round++)
            {
                RunRound(a, codec, round);
                await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            }
        }

        Directory.CreateDirectory(optionsB.DataDirectory);
        File.WriteAllText(Path.Combine(optionsB.DataDirectory, "aggregator.db"), "B's own round store");
        Dictionary<string, string> before = Contents(optionsB.DataDirectory);
        const string Table = "securefed_coordinator_moments";
        string where = $"WHERE federation = '{Name}' AND model_version = 2";

        // A bit flipped in the moments: corrupt, naming the version and both hashes.
        await ExecuteAsync(db, $"UPDATE {Table} SET bytes = set_byte(bytes, 9, get_byte(bytes, 9) # 1) {where}");
        var corrupt = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-b", optionsB));
        Assert.Contains($"the moments of model version 2 of federation '{Name}' in the cluster's database (table {Table}) are corrupt", corrupt.Message, StringComparison.Ordinal);
        Assert.Contains("hash to SHA-256", corrupt.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);
        await ExecuteAsync(db, $"UPDATE {Table} SET bytes = set_byte(bytes, 9, get_byte(bytes, 9) # 1) {where}");

        // The same in the second moment, which has a column of its own.
        await ExecuteAsync(db, $"UPDATE {Table} SET second = set_byte(second, 17, get_byte(second, 17) # 1) {where}");
        var corruptSecond = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-b", optionsB));
        Assert.Contains($"the moments of model version 2 of federation '{Name}' in the cluster's database (table {Table}) are corrupt", corruptSecond.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);
        await ExecuteAsync(db, $"UPDATE {Table} SET second = set_byte(second, 17, get_byte(second, 17) # 1) {where}");

        // Another step count than the round store's: mismatched, naming both.
        await ExecuteAsync(db, $"UPDATE {Table} SET steps = 1 {where}");
        var steps = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-c", optionsB));
        Assert.Contains("are the adam moments after 1 steps for 3000 parameters, but the saved round store's model version 2 goes with the adam moments after 2 steps for 3000 parameters", steps.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);
        await ExecuteAsync(db, $"UPDATE {Table} SET steps = 2 {where}");

        // The row says another model version: the round store's version's moments are missing, and which the database holds is named.
        await ExecuteAsync(db, $"UPDATE {Table} SET model_version = 1 {where}");
        var version = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-d", optionsB));
        Assert.Contains($"the adam moments of model version 2 (2 steps, 3000 parameters) of federation '{Name}' are missing from the cluster's database (table {Table} holds the adam moments after 2 steps of model version 1)", version.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);

        // No row at all: missing.
        await ExecuteAsync(db, $"DELETE FROM {Table} WHERE federation = '{Name}'");
        var missing = await Assert.ThrowsAsync<InvalidDataException>(() => TakeOverAsync(db, lease, "silo-e", optionsB));
        Assert.Contains($"the adam moments of model version 2 (2 steps, 3000 parameters) of federation '{Name}' are missing from the cluster's database (table {Table} holds none)", missing.Message, StringComparison.Ordinal);
        AssertUntouched(optionsB.DataDirectory, before);
    }

    [SkippableFact]
    public async Task TakeOver_EachMomentInItsOwnColumnOrBothInBytesAsBeforeSession19_RestoredBitForBit()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Name = "moments-columns";
        await using var federation = new FrontFederation(Path.Combine(_directory, "columns"), Name, Sites);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Name);
        AggregatorOptions optionsA = Options(federation, "adam", "silo-a-data");
        UpdateCodec codec = Codec();
        SavedServerOptimizer savedByA;
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        await using (ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit))
        using (AggregatorState a = AggregatorState.Open(optionsA))
        {
            RunRound(a, codec, 1);
            await fenceA.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
            savedByA = a.Store.LoadServerOptimizer()!;
        }

        // Each moment is a value of its own (PostgreSQL takes at most 1 GB in one value).
        const long Bytes8 = 8L * FrontFederation.Parameters;
        Assert.Equal((Bytes8, Bytes8), await ColumnLengthsAsync(db, Name));

        // B restores that layout bit for bit.
        await ExpireAsync(db, Name);
        AggregatorOptions optionsB = Options(federation, "adam", "silo-b-data");
        await TakeOverAsync(db, lease, "silo-b", optionsB);
        AssertMoments(savedByA, optionsB);

        // A row written before session 19, both moments in bytes and second null: C restores it bit for bit too.
        await ExecuteAsync(db, $"UPDATE securefed_coordinator_moments SET bytes = bytes || second, second = NULL WHERE federation = '{Name}'");
        Assert.Equal((2 * Bytes8, -1L), await ColumnLengthsAsync(db, Name));
        await ExpireAsync(db, Name);
        AggregatorOptions optionsC = Options(federation, "adam", "silo-c-data");
        await TakeOverAsync(db, lease, "silo-c", optionsC);
        AssertMoments(savedByA, optionsC);
    }

    [SkippableFact]
    public async Task Save_AdamMomentsOfSeventyMillionParameters_OverOneGigabyteInAllSavedEachMomentUnderTheValueLimit()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Name = "moments-large";
        const long Parameters = 70_000_000; // 2 × 560 MB of doubles: one value of 1.12 GB would exceed PostgreSQL's 1 GB
        const long Half = 8 * Parameters;
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Name);
        long epoch = (await lease.TryAcquireAsync("silo-a", TimeSpan.FromMinutes(10), CancellationToken.None).WaitAsync(WaitLimit))!.Value;
        var state = new PostgresCoordinatorState(db, lease);
        await state.SaveAuditAsync(WriteEmptyLog(), "silo-a", epoch, CancellationToken.None).WaitAsync(WaitLimit); // creates the tables
        var record = new ServerOptimizerRecord(1, "adam", 1, Parameters, Half, Half);
        var moments = new CoordinatorMoments(record, _ => new GeneratedStream(2 * Half));

        (int rows, long bytes) = await SaveMomentsAsync(db, lease, epoch, moments);

        // The database hashed each moment as it received it and agreed with the stream (else the save throws).
        Assert.Equal((1, 2 * Half), (rows, bytes));
        Assert.Equal((Half, Half), await ColumnLengthsAsync(db, Name));
        await using NpgsqlCommand command = db.CreateCommand("SELECT sha256 FROM securefed_coordinator_moments WHERE federation = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = Name });
        using var whole = new GeneratedStream(2 * Half);
        Assert.Equal(Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(whole)), (string?)await command.ExecuteScalarAsync());
        await ExecuteAsync(db, $"DELETE FROM securefed_coordinator_moments WHERE federation = '{Name}'");
    }

    private string WriteEmptyLog()
    {
        Directory.CreateDirectory(_directory);
        string path = Path.Combine(_directory, "empty-audit.jsonl");
        File.WriteAllText(path, "");
        return path;
    }

    private static async Task<(int Rows, long Bytes)> SaveMomentsAsync(NpgsqlDataSource db, PostgresCoordinatorLease lease, long epoch, CoordinatorMoments moments)
    {
        await using NpgsqlConnection connection = await db.OpenConnectionAsync();
        await using NpgsqlTransaction transaction = await connection.BeginTransactionAsync();
        await lease.FenceAsync(connection, transaction, "silo-a", epoch, CancellationToken.None);
        (int, long) saved = await CoordinatorMomentRows.SaveAsync(connection, transaction, lease.Federation, epoch, moments, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));
        await transaction.CommitAsync();
        return saved;
    }

    private static async Task<(long Bytes, long Second)> ColumnLengthsAsync(NpgsqlDataSource db, string federation)
    {
        await using NpgsqlCommand command = db.CreateCommand("SELECT octet_length(bytes), coalesce(octet_length(second), -1) FROM securefed_coordinator_moments WHERE federation = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = federation });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync().WaitAsync(WaitLimit);
        Assert.True(await reader.ReadAsync());
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private static void AssertMoments(SavedServerOptimizer expected, AggregatorOptions options)
    {
        using AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(options.DataDirectory));
        SavedServerOptimizer restored = store.LoadServerOptimizer()!;
        Assert.Equal((expected.ModelVersion, expected.Kind, expected.Steps), (restored.ModelVersion, restored.Kind, restored.Steps));
        Assert.Equal(Bytes(expected.First), Bytes(restored.First));
        Assert.Equal(Bytes(expected.Second!), Bytes(restored.Second!));
    }

    /// <summary>A seekable read-only stream of <c>length</c> pseudo-random bytes (a function of the position), never in memory.</summary>
    private sealed class GeneratedStream(long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => _position; set => _position = value; }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, Math.Max(0, length - _position));
            for (int i = 0; i < n; i++)
            {
                ulong x = (ulong)(_position + i) * 0x9E3779B97F4A7C15UL;
                buffer[i] = (byte)((x ^ (x >> 29)) >> 40);
            }

            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin)
        {
            _position = origin switch { SeekOrigin.Begin => offset, SeekOrigin.Current => _position + offset, _ => length + offset };
            return _position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>One round as <c>RoundCoordinator.CompleteAsync</c> ends it: fusion under the rule, model and moments stored in one transaction.</summary>
    private static void RunRound(AggregatorState state, UpdateCodec codec, int seed)
    {
        long round = state.Store.BeginRound("{}");
        uint[] sum = Sum(codec, seed);
        float[] baseModel = ModelState.FromBytes(state.Store.LoadModel(state.Model.Version)!, $"model version {state.Model.Version}");
        SumFusion fusion = state.ServerRule.BeginFusion(baseModel, state.Model.Version, codec, codec.DecodeTotalWeight(sum), digest: false);
        fusion.Add(0, sum.AsSpan(0, 1000));
        fusion.Add(1000, sum.AsSpan(1000));
        float[] next = fusion.Complete().Next;
        long version = state.Model.Version + 1;
        string sha = ModelState.Digest(next);
        state.Store.CompleteRoundWithModel(round, version, ModelState.ToBytes(next), sha, Sites, state.ServerRule.Moments);
        state.ServerRule.Stored();
        state.Model.Update(version, sha);
    }

    private static UpdateCodec Codec() =>
        UpdateCodec.Plan(FrontFederation.Parameters, clipBound: 1.0, cohortSize: Sites.Length, noiseHeadroom: 0.5, 1000, evaluation: null);

    /// <summary>A plausible unmasked sum: small signed coordinates mod 2^b and weight 2000.</summary>
    private static uint[] Sum(UpdateCodec codec, int seed)
    {
        var random = new Random(seed);
        uint mask = codec.BitWidth == 32 ? uint.MaxValue : (1u << codec.BitWidth) - 1;
        uint[] sum = new uint[codec.VectorLength];
        for (int i = 0; i < codec.ParameterCount; i++)
        {
            sum[i] = (uint)(long)Math.Round((random.NextDouble() - 0.5) * 0.05 * codec.Scale) & mask;
        }

        sum[codec.ParameterCount] = 2000;
        return sum;
    }

    private static byte[] Bytes(double[] values) => [.. values.SelectMany(BitConverter.GetBytes)];

    private static async Task<List<(long Version, long Steps, long Epoch, string RowVersion)>> MomentRowsAsync(NpgsqlDataSource db, string federation)
    {
        await using NpgsqlCommand command = db.CreateCommand("SELECT model_version, steps, epoch, xmin::text FROM securefed_coordinator_moments WHERE federation = $1 ORDER BY model_version");
        command.Parameters.Add(new NpgsqlParameter { Value = federation });
        var rows = new List<(long, long, long, string)>();
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync().WaitAsync(WaitLimit);
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetString(3)));
        }

        return rows;
    }

    private AggregatorOptions Options(FrontFederation federation, string rule, string data) => new()
    {
        Federation = federation.Federation,
        KitDirectory = federation.Provisioned.AggregatorKitDirectory,
        DataDirectory = Path.Combine(federation.Directory, data),
        InitialModel = federation.InitialModelPath,
        ServerOptimizer = rule,
        ServerLearningRate = 0.05,
        ServerTau = 1e-3,
    };
}
