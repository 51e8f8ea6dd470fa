using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;

using Microsoft.Data.Sqlite;

namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// The aggregator's durable state in SQLite (WAL journal, <c>synchronous=FULL</c>, foreign keys on, incremental
/// auto-vacuum for a file it creates (<see cref="ReleaseFreePages"/>, <see cref="Compact"/>), versioned schema):
/// the federation it belongs to, rounds and their stages, model versions, seen submissions and a ledger.
/// A restart mid-round is handled by <see cref="AbortInterruptedRounds"/>; completed rounds and models are never
/// lost. An existing database is never deleted or reset: a corrupt or foreign file is refused with an error naming it.
/// Thread-safe (one connection, serialized).
/// </summary>
public sealed partial class AggregatorStore : IDisposable
{
    /// <summary>The largest value (model version, one moment of the server optimizer) the round store holds: SQLite's default length limit, 10⁹ bytes.</summary>
    public const long MaxValueBytes = 1_000_000_000;

    /// <summary>
    /// The ledger kind of the record of the model versions a round's completion deleted ({model_version, keep,
    /// pruned{version: sha256}}), written in the transaction that deleted them.
    /// </summary>
    public const string ModelsPrunedKind = "models.pruned";

    /// <summary>
    /// The ledger kind of the record of a round's federated evaluation (its published counts, or why none was published),
    /// written by the coordinator before it stores the round's model, so that an aggregator killed after the model was stored
    /// but before the evaluation was audited can audit it at its next start.
    /// </summary>
    public const string FederatedEvaluationKind = "evaluation.federated";

    private const int SqliteCantOpen = 14;
    private const int SqliteCorrupt = 11;
    private const int SqliteNotADatabase = 26;
    private const int SqliteReadOnly = 8;
    private const int SqliteIoError = 10;
    private const int SqliteFull = 13;

    /// <summary>Bytes written per incremental blob write when a model is stored (1 MiB).</summary>
    private const int ModelWriteBlock = 1 << 20;

    /// <summary>Bytes read from a stream and written per incremental blob write when a model's bytes are written back (128 KiB, pooled).</summary>
    private const int ModelCopyBlock = 1 << 17;

    private readonly SqliteConnection _connection;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private bool _disposed;

    private AggregatorStore(string path, SqliteConnection connection, TimeProvider time)
    {
        Path = path;
        _connection = connection;
        _time = time;
    }

    /// <summary>The full path of the database file.</summary>
    public string Path { get; }

    /// <summary>The schema version this build writes.</summary>
    public static int SchemaVersion => StoreSchema.LatestVersion;

    /// <summary>
    /// Opens (creating if needed) the database at <paramref name="path"/>, creating its directory, and migrates the
    /// schema to the current version.
    /// </summary>
    /// <exception cref="IOException">The directory or file cannot be created, opened or written; the message names the path.</exception>
    /// <exception cref="InvalidDataException">The file is corrupt, not SQLite, not a SecureFed aggregator database, or from a newer version.</exception>
    public static AggregatorStore Open(string path, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        string directory = System.IO.Path.GetDirectoryName(fullPath)
            ?? throw new IOException($"Aggregator database '{fullPath}' has no parent directory.");
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Cannot open aggregator database '{fullPath}': directory '{directory}' cannot be created ({ex.Message}).", ex);
        }

        if (Directory.Exists(fullPath))
        {
            throw new IOException($"Cannot open aggregator database '{fullPath}': it is a directory.");
        }

        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            ForeignKeys = true,
            DefaultTimeout = 30,
        };
        var connection = new SqliteConnection(builder.ConnectionString);
        try
        {
            connection.Open();
            UseIncrementalVacuumIfNew(connection); // before journal_mode=WAL, which writes the header of a new file
            string mode = (string)Scalar(connection, null, "PRAGMA journal_mode=WAL;")!;
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                throw new IOException($"Cannot open aggregator database '{fullPath}': the WAL journal is not available (journal_mode is '{mode}').");
            }

            Execute(connection, null, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;");
            Migrate(connection, fullPath, time ?? TimeProvider.System);
            return new AggregatorStore(fullPath, connection, time ?? TimeProvider.System);
        }
        catch (SqliteException ex)
        {
            connection.Dispose();
            throw Translate(ex, fullPath);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Binds the database to federation <paramref name="name"/> on first use, and afterwards checks that it belongs to it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The database belongs to another federation.</exception>
    public void EnsureFederation(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            string? existing = (string?)Scalar(_connection, tx, "SELECT name FROM federation WHERE id = 1;");
            if (existing is null)
            {
                Execute(_connection, tx, "INSERT INTO federation (id, name, created_utc) VALUES (1, $name, $now);", ("$name", name), ("$now", Now()));
            }
            else if (!string.Equals(existing, name, StringComparison.Ordinal))
            {
                throw new InvalidOperationException(
                    $"Aggregator database '{Path}' belongs to federation '{existing}', not '{name}'; use a separate data directory per federation.");
            }

            tx.Commit();
        });
    }

    /// <summary>The federation this database belongs to, or null before <see cref="EnsureFederation"/>.</summary>
    public string? FederationName => Run(() => (string?)Scalar(_connection, null, "SELECT name FROM federation WHERE id = 1;"));

    /// <summary>Starts a new round numbered one more than the highest round so far.</summary>
    /// <param name="configurationJson">The round configuration (JSON), kept for the audit trail.</param>
    /// <returns>The new round number.</returns>
    /// <exception cref="ArgumentException"><paramref name="configurationJson"/> is not valid JSON.</exception>
    /// <exception cref="InvalidOperationException">Another round is still running.</exception>
    public long BeginRound(string configurationJson)
    {
        ArgumentNullException.ThrowIfNull(configurationJson);
        RequireJson(configurationJson, nameof(configurationJson));
        return Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            object? running = Scalar(_connection, tx, "SELECT round FROM rounds WHERE status = 'running' ORDER BY round LIMIT 1;");
            if (running is long r)
            {
                throw new InvalidOperationException($"Cannot begin a round: round {r} is still running; complete or abort it first.");
            }

            long round = (long)Scalar(_connection, tx, "SELECT COALESCE(MAX(round), 0) + 1 FROM rounds;")!;
            Execute(
                _connection,
                tx,
                "INSERT INTO rounds (round, status, configuration, started_utc) VALUES ($round, 'running', $config, $now);",
                ("$round", round),
                ("$config", configurationJson),
                ("$now", Now()));
            tx.Commit();
            return round;
        });
    }

    /// <summary>Records that running round <paramref name="round"/> reached <paramref name="stage"/> with <paramref name="participants"/>.</summary>
    /// <exception cref="InvalidOperationException">The round does not exist or is not running.</exception>
    public void RecordStage(long round, string stage, IReadOnlyList<string> participants)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(stage);
        string names = ParticipantsJson(participants);
        Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            RequireRunning(tx, round, "record a stage of");
            long seq = (long)Scalar(_connection, tx, "SELECT COALESCE(MAX(seq), 0) + 1 FROM round_stages WHERE round = $round;", ("$round", round))!;
            Execute(
                _connection,
                tx,
                "INSERT INTO round_stages (round, seq, stage, participants, recorded_utc) VALUES ($round, $seq, $stage, $p, $now);",
                ("$round", round),
                ("$seq", seq),
                ("$stage", stage),
                ("$p", names),
                ("$now", Now()));
            tx.Commit();
        });
    }

    /// <summary>Marks running round <paramref name="round"/> completed with the fused model's digest and its contributors.</summary>
    /// <exception cref="InvalidOperationException">The round does not exist or is not running.</exception>
    public void CompleteRound(long round, string modelSha256, IReadOnlyList<string> participants)
    {
        string sha = NormalizeSha256(modelSha256, nameof(modelSha256));
        string names = ParticipantsJson(participants);
        Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            CompleteRoundCore(tx, round, sha, names);
            tx.Commit();
        });
    }

    /// <summary>Stores the fused model as <paramref name="version"/> and completes <paramref name="round"/>, atomically.</summary>
    /// <exception cref="ArgumentException"><paramref name="sha256"/> is not the SHA-256 of <paramref name="modelBytes"/>.</exception>
    /// <exception cref="InvalidOperationException">The round is not running, or the version is not newer than the latest.</exception>
    public void CompleteRoundWithModel(long round, long version, ReadOnlySpan<byte> modelBytes, string sha256, IReadOnlyList<string> participants) =>
        CompleteRoundWithModel(round, version, modelBytes, sha256, participants, moments: null);

    /// <summary>
    /// As <see cref="CompleteRoundWithModel(long, long, ReadOnlySpan{byte}, string, IReadOnlyList{string})"/>, and in the
    /// same transaction replaces the server update rule's saved state with <paramref name="moments"/> for
    /// <paramref name="version"/> (null: the rule keeps none, and any saved state is deleted), so that a model version
    /// is never stored without the moments it goes with, nor moments without their version.
    /// </summary>
    /// <exception cref="ArgumentException">The moments' lengths do not match the model's parameter count.</exception>
    public void CompleteRoundWithModel(long round, long version, ReadOnlySpan<byte> modelBytes, string sha256, IReadOnlyList<string> participants, ServerOptimizerMoments? moments) =>
        CompleteRoundWithModel(round, version, modelBytes, sha256, participants, moments, keepModelVersions: 0);

    /// <summary>
    /// As <see cref="CompleteRoundWithModel(long, long, ReadOnlySpan{byte}, string, IReadOnlyList{string}, ServerOptimizerMoments?)"/>,
    /// and in the same transaction deletes the model versions older than the newest <paramref name="keepModelVersions"/>
    /// (0: none; see <see cref="PruneModelsCore"/> for the versions never deleted). Returns the deleted versions' records.
    /// </summary>
    /// <exception cref="ArgumentException">The moments' lengths do not match the model's parameter count.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="keepModelVersions"/> is negative.</exception>
    public IReadOnlyList<ModelRecord> CompleteRoundWithModel(
        long round, long version, ReadOnlySpan<byte> modelBytes, string sha256, IReadOnlyList<string> participants, ServerOptimizerMoments? moments, int keepModelVersions)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keepModelVersions);
        string sha = VerifiedSha256(modelBytes, sha256);
        string names = ParticipantsJson(participants);
        if (moments is not null)
        {
            long parameters = modelBytes.Length / sizeof(float);
            if (moments.First.Length != parameters || (moments.Second.Length != 0 && moments.Second.Length != parameters))
            {
                throw new ArgumentException($"The server optimizer's moments have {moments.First.Length} and {moments.Second.Length} values; the model has {parameters} parameters.", nameof(moments));
            }
        }

        IReadOnlyList<ModelRecord> pruned = [];
        Run(modelBytes, bytes =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            CompleteRoundCore(tx, round, sha, names);
            SaveModelCore(tx, version, round, bytes, sha);
            SaveServerOptimizerCore(tx, version, moments);
            pruned = PruneModelsCore(tx, keepModelVersions, round, version);
            tx.Commit();
        });
        return pruned;
    }

    /// <summary>
    /// As <see cref="CompleteRoundWithModel(long, long, ReadOnlySpan{byte}, string, IReadOnlyList{string}, ServerOptimizerMoments?)"/>,
    /// with the model's bytes read from <paramref name="modelBytes"/> (seekable: its bytes from the current position to the
    /// end) <see cref="ModelCopyBlock"/> bytes at a time and written with incremental blob I/O, never held whole in memory
    /// (the aggregator's next model, written to a staging file as it is fused: <see cref="StoredModelFusion"/>). The bytes
    /// are hashed as they are copied; if they do not hash to <paramref name="sha256"/>, or the stream ends early, nothing is
    /// written.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes do not hash to <paramref name="sha256"/>, are not a positive multiple of 4, or end before the size the stream reported (the message names the version); nothing was written.</exception>
    /// <exception cref="ArgumentException">The moments' lengths do not match the model's parameter count.</exception>
    /// <exception cref="InvalidOperationException">The round is not running, or the version is not newer than the latest.</exception>
    public void CompleteRoundWithModel(long round, long version, Stream modelBytes, string sha256, IReadOnlyList<string> participants, ServerOptimizerMoments? moments) =>
        CompleteRoundWithModel(round, version, modelBytes, sha256, participants, moments, keepModelVersions: 0);

    /// <summary>
    /// As <see cref="CompleteRoundWithModel(long, long, Stream, string, IReadOnlyList{string}, ServerOptimizerMoments?)"/>,
    /// and in the same transaction deletes the model versions older than the newest <paramref name="keepModelVersions"/>
    /// (0: none; see <see cref="PruneModelsCore"/> for the versions never deleted), so a crash leaves either the old
    /// versions and no new one, or the new one and the kept ones. Returns the deleted versions' records, oldest first.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes do not hash to <paramref name="sha256"/>, are not a positive multiple of 4, or end before the size the stream reported (the message names the version); nothing was written.</exception>
    /// <exception cref="ArgumentException">The moments' lengths do not match the model's parameter count.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="keepModelVersions"/> is negative.</exception>
    /// <exception cref="InvalidOperationException">The round is not running, or the version is not newer than the latest.</exception>
    public IReadOnlyList<ModelRecord> CompleteRoundWithModel(
        long round, long version, Stream modelBytes, string sha256, IReadOnlyList<string> participants, ServerOptimizerMoments? moments, int keepModelVersions)
    {
        ArgumentNullException.ThrowIfNull(modelBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(keepModelVersions);
        string sha = NormalizeSha256(sha256, nameof(sha256));
        string names = ParticipantsJson(participants);
        long size = StreamedModelSize(modelBytes, version);
        if (moments is not null)
        {
            long parameters = size / sizeof(float);
            if (moments.First.Length != parameters || (moments.Second.Length != 0 && moments.Second.Length != parameters))
            {
                throw new ArgumentException($"The server optimizer's moments have {moments.First.Length} and {moments.Second.Length} values; the model has {parameters} parameters.", nameof(moments));
            }
        }

        return Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            CompleteRoundCore(tx, round, sha, names);
            SaveModelCore(tx, version, round, modelBytes, size, sha);
            SaveServerOptimizerCore(tx, version, moments);
            IReadOnlyList<ModelRecord> pruned = PruneModelsCore(tx, keepModelVersions, round, version);
            tx.Commit();
            return pruned;
        });
    }

    /// <summary>The model version and rule of the saved server-optimizer state, without reading its moments; null when none is saved.</summary>
    public (long ModelVersion, string Kind)? SavedServerOptimizerVersion() => Run(() =>
    {
        using SqliteCommand cmd = Command(_connection, null, "SELECT model_version, kind FROM server_optimizer ORDER BY model_version DESC LIMIT 1;");
        using SqliteDataReader reader = cmd.ExecuteReader();
        return reader.Read() ? (reader.GetInt64(0), reader.GetString(1)) : ((long, string)?)null;
    });

    /// <summary>
    /// The server update rule's saved state (the moments of the latest model version produced under momentum or adam),
    /// or null when none is saved. Each moment is read into its own array a block at a time (no whole-blob copy).
    /// </summary>
    /// <exception cref="InvalidDataException">The saved state is inconsistent (more than one row, or a blob whose length
    /// is not its parameter count; the message names it).</exception>
    public SavedServerOptimizer? LoadServerOptimizer() => Run(() =>
    {
        long rows = (long)Scalar(_connection, null, "SELECT COUNT(*) FROM server_optimizer;")!;
        if (rows == 0)
        {
            return null;
        }

        if (rows > 1)
        {
            throw new InvalidDataException($"'{Path}' holds the server optimizer's state of {rows} model versions; only the latest one's is kept.");
        }

        long version;
        string kind;
        long steps;
        long count;
        long firstBytes;
        long secondBytes;
        using (SqliteCommand cmd = Command(_connection, null, "SELECT model_version, kind, steps, parameter_count, length(first), length(second) FROM server_optimizer;"))
        using (SqliteDataReader reader = cmd.ExecuteReader())
        {
            reader.Read();
            (version, kind, steps, count, firstBytes, secondBytes) = (reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5));
        }

        if (count > Array.MaxLength || firstBytes != count * sizeof(double) || (secondBytes != 0 && secondBytes != count * sizeof(double)))
        {
            throw new InvalidDataException(
                $"The server optimizer's state saved with model version {version} in '{Path}' is corrupt: {count} parameters, but moments of {firstBytes} and {secondBytes} bytes.");
        }

        double[] first = ReadDoubles(version, "first", (int)count);
        double[]? second = secondBytes == 0 ? null : ReadDoubles(version, "second", (int)count);
        return new SavedServerOptimizer(version, kind, steps, first, second);
    });

    /// <summary>Marks <paramref name="round"/> aborted. Aborting an already aborted round does nothing.</summary>
    /// <exception cref="InvalidOperationException">The round does not exist or is completed.</exception>
    public void AbortRound(long round, string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            string status = Status(tx, round);
            if (status == "completed")
            {
                throw new InvalidOperationException($"Cannot abort round {round}: it is already completed.");
            }

            if (status == "running")
            {
                Execute(
                    _connection,
                    tx,
                    "UPDATE rounds SET status = 'aborted', ended_utc = $now, abort_reason = $reason WHERE round = $round;",
                    ("$now", Now()),
                    ("$reason", reason),
                    ("$round", round));
            }

            tx.Commit();
        });
    }

    /// <summary>At start-up: marks every round that is neither completed nor aborted as aborted.</summary>
    /// <returns>How many rounds were aborted.</returns>
    public int AbortInterruptedRounds(string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        return Run(() => Execute(
            _connection,
            null,
            "UPDATE rounds SET status = 'aborted', ended_utc = $now, abort_reason = $reason WHERE status = 'running';",
            ("$now", Now()),
            ("$reason", reason)));
    }

    /// <summary>The round with its stages, or null if it does not exist.</summary>
    public RoundRecord? GetRound(long round) => Run(() => ReadRounds("WHERE round = $round", ("$round", round)).SingleOrDefault());

    /// <summary>All rounds, oldest first.</summary>
    public IReadOnlyList<RoundRecord> ListRounds() => Run(() => ReadRounds(string.Empty));

    /// <summary>The <paramref name="count"/> most recent rounds (attempts), oldest first: bounded work however long the history.</summary>
    public IReadOnlyList<RoundRecord> ListRecentRounds(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        return Run(() => ReadRounds("WHERE round IN (SELECT round FROM rounds ORDER BY round DESC LIMIT $count)", ("$count", count)));
    }

    /// <summary>
    /// Stores a model version produced by <paramref name="round"/>; round 0 means "no round" (the initial model,
    /// typically version 0). Versions start at 0 and only increase.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="sha256"/> is not the SHA-256 of <paramref name="modelBytes"/>.</exception>
    /// <exception cref="InvalidOperationException">The round does not exist or the version is not newer than the latest.</exception>
    public void SaveModel(long version, long round, ReadOnlySpan<byte> modelBytes, string sha256)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(round);
        string sha = VerifiedSha256(modelBytes, sha256);
        Run(modelBytes, bytes =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            if (round != 0)
            {
                _ = Status(tx, round);
            }

            SaveModelCore(tx, version, round, bytes, sha);
            tx.Commit();
        });
    }

    /// <summary>
    /// As <see cref="SaveModel(long, long, ReadOnlySpan{byte}, string)"/>, with the bytes read from
    /// <paramref name="modelBytes"/> (seekable: from the current position to the end) a block at a time and written with
    /// incremental blob I/O, never held whole in memory; nothing is written unless they hash to <paramref name="sha256"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes do not hash to <paramref name="sha256"/>, are not a positive multiple of 4, or end early; nothing was written.</exception>
    /// <exception cref="InvalidOperationException">The round does not exist or the version is not newer than the latest.</exception>
    public void SaveModel(long version, long round, Stream modelBytes, string sha256)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(round);
        ArgumentNullException.ThrowIfNull(modelBytes);
        string sha = NormalizeSha256(sha256, nameof(sha256));
        long size = StreamedModelSize(modelBytes, version);
        Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            if (round != 0)
            {
                _ = Status(tx, round);
            }

            SaveModelCore(tx, version, round, modelBytes, size, sha);
            tx.Commit();
        });
    }

    /// <summary>Model <paramref name="version"/>'s metadata, or null if it does not exist.</summary>
    public ModelRecord? FindModel(long version) => Run(() => ReadModels(null, "main", "WHERE version = $v", ("$v", version)).SingleOrDefault());

    /// <summary>
    /// The metadata of the model version <paramref name="round"/> produced, or null when it produced none or the version
    /// was deleted since (<c>KeepModelVersions</c>).
    /// </summary>
    public ModelRecord? FindModelOfRound(long round) => Run(() => ReadModels(null, "main", "WHERE round = $r", ("$r", round)).LastOrDefault());

    /// <summary>The newest model version's metadata, or null if no model is stored.</summary>
    public ModelRecord? LatestModel() => Run(() =>
    {
        using SqliteCommand cmd = Command(_connection, null, "SELECT version, round, sha256, size_bytes, created_utc FROM models ORDER BY version DESC LIMIT 1;");
        using SqliteDataReader reader = cmd.ExecuteReader();
        return reader.Read()
            ? new ModelRecord(reader.GetInt64(0), reader.IsDBNull(1) ? 0 : reader.GetInt64(1), reader.GetString(2), reader.GetInt64(3), ParseTime(reader.GetString(4)))
            : null;
    });

    /// <summary>Reads model <paramref name="version"/> and verifies it against its stored SHA-256; null if it does not exist.</summary>
    /// <exception cref="InvalidDataException">The stored bytes do not match the stored digest.</exception>
    public byte[]? LoadModel(long version) => Run(() =>
    {
        using SqliteCommand cmd = Command(_connection, null, "SELECT sha256, bytes FROM models WHERE version = $v;", ("$v", version));
        using SqliteDataReader reader = cmd.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        string expected = reader.GetString(0);
        byte[] bytes = reader.GetFieldValue<byte[]>(1);
        string actual = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (!string.Equals(actual, expected, StringComparison.Ordinal))
        {
            throw new InvalidDataException(
                $"Model version {version} in '{Path}' is corrupt: its recorded SHA-256 is {expected} but the stored bytes hash to {actual}.");
        }

        return bytes;
    });

    /// <summary>
    /// Records that <paramref name="site"/> submitted a message with digest <paramref name="sha256"/> for
    /// (<paramref name="round"/>, <paramref name="stage"/>), for idempotent submissions.
    /// </summary>
    /// <returns>True if this is the first submission; false if the identical message was already recorded (a harmless retry).</returns>
    /// <exception cref="InvalidOperationException">A different message was already recorded for the same round, site and stage, or the round does not exist.</exception>
    public bool TryRecordSubmission(long round, string site, string stage, string sha256)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(site);
        ArgumentException.ThrowIfNullOrWhiteSpace(stage);
        string sha = NormalizeSha256(sha256, nameof(sha256));
        return Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            _ = Status(tx, round);
            string? existing = (string?)Scalar(
                _connection,
                tx,
                "SELECT sha256 FROM submissions WHERE round = $round AND site = $site AND stage = $stage;",
                ("$round", round),
                ("$site", site),
                ("$stage", stage));
            if (existing is not null)
            {
                return string.Equals(existing, sha, StringComparison.Ordinal)
                    ? false
                    : throw new InvalidOperationException(
                        $"Site '{site}' already submitted a different message for round {round}, stage '{stage}' (recorded SHA-256 {existing}, now {sha}); equivocation refused.");
            }

            Execute(
                _connection,
                tx,
                "INSERT INTO submissions (round, site, stage, sha256, recorded_utc) VALUES ($round, $site, $stage, $sha, $now);",
                ("$round", round),
                ("$site", site),
                ("$stage", stage),
                ("$sha", sha),
                ("$now", Now()));
            tx.Commit();
            return true;
        });
    }

    /// <summary>Appends a ledger entry (e.g. privacy spent in a round) and returns its sequence number.</summary>
    /// <exception cref="ArgumentException"><paramref name="payloadJson"/> is not valid JSON.</exception>
    public long AppendLedger(long? round, string kind, string payloadJson)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        ArgumentNullException.ThrowIfNull(payloadJson);
        RequireJson(payloadJson, nameof(payloadJson));
        return Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            if (round is long r)
            {
                _ = Status(tx, r);
            }

            long seq = InsertLedgerCore(tx, round, kind, payloadJson);
            tx.Commit();
            return seq;
        });
    }

    /// <summary>Inserts a ledger entry in <paramref name="tx"/>; returns its sequence number.</summary>
    private long InsertLedgerCore(SqliteTransaction tx, long? round, string kind, string payloadJson)
    {
        Execute(
            _connection,
            tx,
            "INSERT INTO ledger (round, kind, payload, recorded_utc) VALUES ($round, $kind, $payload, $now);",
            ("$round", round.HasValue ? (object)round.Value : DBNull.Value),
            ("$kind", kind),
            ("$payload", payloadJson),
            ("$now", Now()));
        return (long)Scalar(_connection, tx, "SELECT last_insert_rowid();")!;
    }

    /// <summary>The ledger entries in order, optionally only those of one kind.</summary>
    public IReadOnlyList<LedgerEntry> ListLedger(string? kind = null) => Run(() =>
    {
        using SqliteCommand cmd = Command(
            _connection,
            null,
            "SELECT seq, round, kind, payload, recorded_utc FROM ledger WHERE $kind IS NULL OR kind = $kind ORDER BY seq;",
            ("$kind", (object?)kind ?? DBNull.Value));
        using SqliteDataReader reader = cmd.ExecuteReader();
        var entries = new List<LedgerEntry>();
        while (reader.Read())
        {
            entries.Add(new LedgerEntry(
                reader.GetInt64(0),
                reader.IsDBNull(1) ? null : reader.GetInt64(1),
                reader.GetString(2),
                reader.GetString(3),
                ParseTime(reader.GetString(4))));
        }

        return (IReadOnlyList<LedgerEntry>)entries;
    });

    /// <summary>The last ledger entry of <paramref name="kind"/> recorded for <paramref name="round"/>, or null when there is none.</summary>
    public LedgerEntry? LastLedgerEntry(long round, string kind)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        return Run(() =>
        {
            using SqliteCommand cmd = Command(
                _connection,
                null,
                "SELECT seq, round, kind, payload, recorded_utc FROM ledger WHERE round = $round AND kind = $kind ORDER BY seq DESC LIMIT 1;",
                ("$round", round),
                ("$kind", kind));
            using SqliteDataReader reader = cmd.ExecuteReader();
            return reader.Read()
                ? new LedgerEntry(reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetString(3), ParseTime(reader.GetString(4)))
                : null;
        });
    }

    /// <summary>
    /// A consistent copy of the whole database as one SQLite file (<c>VACUUM INTO</c> a temporary file, read back and
    /// deleted): what the aggregator cluster's coordinator keeps in PostgreSQL so that another silo can take over.
    /// </summary>
    public byte[] Snapshot()
    {
        string temp = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"securefed-snapshot-{Guid.NewGuid():N}.db");
        try
        {
            SnapshotTo(temp);
            return File.ReadAllBytes(temp);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>
    /// Writes a consistent copy of the database (as <see cref="Snapshot"/>) to the new file <paramref name="path"/>,
    /// without reading it into memory.
    /// </summary>
    public void SnapshotTo(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Run(() => Execute(_connection, null, "VACUUM INTO $path;", ("$path", path)));
    }

    /// <summary>
    /// Writes a consistent copy of the database to the new file <paramref name="path"/> in which every model row keeps
    /// its metadata (version, round, SHA-256, size, time) but holds no bytes (an empty blob), and so does the server update
    /// rule's saved state (its model version, rule, steps and parameter count, the moments left out: written back with
    /// <see cref="WriteServerOptimizerBytes"/>); every other table is copied whole. Nothing of a model is read. Returns the model versions of the copy, whose bytes are kept elsewhere (the
    /// aggregator cluster's coordinator sends each version once) and written back with <see cref="WriteModelBytes"/>.
    /// </summary>
    /// <exception cref="IOException"><paramref name="path"/> already exists.</exception>
    public IReadOnlyList<ModelRecord> SnapshotWithoutModelBytesTo(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = System.IO.Path.GetFullPath(path);
        if (File.Exists(full))
        {
            throw new IOException($"Cannot write a snapshot of '{Path}' to '{full}': the file already exists.");
        }

        // The copy gets its schema the way every store does (the same migrations, hence the same tables and columns).
        var builder = new SqliteConnectionStringBuilder { DataSource = full, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false };
        using (var copy = new SqliteConnection(builder.ConnectionString))
        {
            copy.Open();
            UseIncrementalVacuumIfNew(copy);
            Migrate(copy, full, _time);
        }

        return Run(() =>
        {
            Execute(_connection, null, "ATTACH DATABASE $path AS snapshot;", ("$path", full));
            try
            {
                using SqliteTransaction tx = _connection.BeginTransaction();
                List<string> tables = TableNames(tx, "main");
                List<string> copyTables = TableNames(tx, "snapshot");
                if (!tables.Order(StringComparer.Ordinal).SequenceEqual(copyTables.Order(StringComparer.Ordinal), StringComparer.Ordinal))
                {
                    throw new InvalidOperationException(
                        $"Cannot snapshot '{Path}': its tables ({string.Join(", ", tables)}) are not those of a new store ({string.Join(", ", copyTables)}).");
                }

                foreach (string table in tables.OrderBy(t => t == "rounds" ? 0 : 1)) // rounds first: other tables refer to it
                {
                    Execute(_connection, tx, $"DELETE FROM snapshot.\"{table}\";");
                    Execute(
                        _connection,
                        tx,
                        table switch
                        {
                            "models" => "INSERT INTO snapshot.models (version, round, sha256, size_bytes, created_utc, bytes) SELECT version, round, sha256, size_bytes, created_utc, x'' FROM main.models;",
                            "server_optimizer" => ServerOptimizerWithoutBytesSql, // the moments go apart too, once per model version
                            _ => $"INSERT INTO snapshot.\"{table}\" SELECT * FROM main.\"{table}\";",
                        });
                }

                IReadOnlyList<ModelRecord> models = ReadModels(tx, "main", string.Empty);
                tx.Commit();
                return models;
            }
            finally
            {
                Execute(_connection, null, "DETACH DATABASE snapshot;");
            }
        });
    }

    /// <summary>Every model version's metadata, oldest first.</summary>
    public IReadOnlyList<ModelRecord> ListModels() => Run(() => ReadModels(null, "main", string.Empty));

    /// <summary>
    /// The model versions whose bytes are not in this database (their rows hold an empty blob while their size is not
    /// zero): a store restored from <see cref="SnapshotWithoutModelBytesTo"/> before <see cref="WriteModelBytes"/>.
    /// </summary>
    public IReadOnlyList<ModelRecord> ListModelsWithoutBytes() => Run(() => ReadModels(null, "main", "WHERE length(bytes) <> size_bytes"));

    /// <summary>
    /// Writes the bytes of model <paramref name="version"/> (a row without its bytes, see <see cref="ListModelsWithoutBytes"/>)
    /// from <paramref name="source"/>, read to its end <see cref="ModelCopyBlock"/> bytes at a time and written with
    /// incremental blob I/O, never held whole in memory. The bytes must be exactly the row's size and hash to its
    /// SHA-256; otherwise nothing is written.
    /// </summary>
    /// <exception cref="InvalidOperationException">The version does not exist or already holds its bytes.</exception>
    /// <exception cref="InvalidDataException">The bytes are shorter or longer than the row's size, or do not hash to its SHA-256 (the message names the version).</exception>
    public void WriteModelBytes(long version, Stream source)
    {
        ArgumentNullException.ThrowIfNull(source);
        Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            IReadOnlyList<ModelRecord> found = ReadModels(tx, "main", "WHERE version = $v AND length(bytes) <> size_bytes", ("$v", version));
            if (found.Count == 0)
            {
                throw new InvalidOperationException(
                    Scalar(_connection, tx, "SELECT 1 FROM models WHERE version = $v;", ("$v", version)) is null
                        ? $"Cannot write the bytes of model version {version}: '{Path}' has no such version."
                        : $"Cannot write the bytes of model version {version}: '{Path}' already holds them.");
            }

            ModelRecord model = found[0];
            Execute(_connection, tx, "UPDATE models SET bytes = zeroblob($size) WHERE version = $v;", ("$size", model.SizeBytes), ("$v", version));
            byte[] buffer = ArrayPool<byte>.Shared.Rent(ModelCopyBlock);
            try
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                using var blob = new SqliteBlob(_connection, "models", "bytes", version);
                long written = 0;
                int read;
                while ((read = source.Read(buffer, 0, (int)Math.Min(ModelCopyBlock, model.SizeBytes - written + 1))) > 0)
                {
                    if (written + read > model.SizeBytes)
                    {
                        throw new InvalidDataException(
                            $"The bytes given for model version {version} of '{Path}' are longer than its recorded size of {model.SizeBytes} bytes; nothing was written.");
                    }

                    blob.Write(buffer, 0, read);
                    hash.AppendData(buffer, 0, read);
                    written += read;
                }

                if (written != model.SizeBytes)
                {
                    throw new InvalidDataException(
                        $"The bytes given for model version {version} of '{Path}' end after {written} of its recorded {model.SizeBytes} bytes; nothing was written.");
                }

                string actual = Convert.ToHexStringLower(hash.GetHashAndReset());
                if (!string.Equals(actual, model.Sha256, StringComparison.Ordinal))
                {
                    throw new InvalidDataException(
                        $"The bytes given for model version {version} of '{Path}' hash to SHA-256 {actual}, not its recorded {model.Sha256}; nothing was written.");
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            tx.Commit();
        });
    }

    /// <summary>
    /// Opens model <paramref name="version"/>'s bytes as a read-only, seekable stream over the database file (incremental
    /// blob I/O on a connection of its own, so the store stays usable while it is read; a stored version never changes).
    /// The caller disposes it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The version does not exist or its bytes are not in this database.</exception>
    public Stream OpenModel(long version)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var builder = new SqliteConnectionStringBuilder { DataSource = Path, Mode = SqliteOpenMode.ReadOnly, Pooling = false, DefaultTimeout = 30 };
        var connection = new SqliteConnection(builder.ConnectionString);
        try
        {
            connection.Open();
            Execute(connection, null, StreamingReadPragmas);
            object? complete = Scalar(connection, null, "SELECT length(bytes) = size_bytes FROM models WHERE version = $v;", ("$v", version));
            if (complete is not long flag || flag == 0)
            {
                throw new InvalidOperationException(complete is null
                    ? $"Model version {version} does not exist in '{Path}'."
                    : $"The bytes of model version {version} are not in '{Path}' (a snapshot without model bytes).");
            }

            return new ModelBlobStream(connection, version, Path);
        }
        catch (SqliteException ex)
        {
            connection.Dispose();
            throw Translate(ex, Path);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The pragmas of a connection that streams one blob once, front to back (<see cref="OpenModel"/>,
    /// <see cref="OpenServerOptimizer"/>): a page cache of 16 pages instead of SQLite's default 2,000 KiB. Each page of the
    /// blob is read once, so a larger cache only holds pages that are never read again. With the default, five concurrent
    /// downloads of a 64 MiB model grew the aggregator's C heap by 11-12 MB (malloc'd bytes in use), memory the C
    /// allocator then kept in its arenas; with 16 pages by under 2 MB (the coordinator) to 4 MB (the single process),
    /// measured together with the reuse of one message per download (docs/benchmarks.md, runs 33-34).
    /// </summary>
    internal const string StreamingReadPragmas = "PRAGMA busy_timeout=5000; PRAGMA cache_size=16;";

    /// <summary>Runs SQLite's <c>quick_check</c>; returns an empty list when the database is consistent.</summary>
    public IReadOnlyList<string> QuickCheck() => Run(() =>
    {
        using SqliteCommand cmd = Command(_connection, null, "PRAGMA quick_check;");
        using SqliteDataReader reader = cmd.ExecuteReader();
        var problems = new List<string>();
        while (reader.Read())
        {
            string line = reader.GetString(0);
            if (line != "ok")
            {
                problems.Add(line);
            }
        }

        return (IReadOnlyList<string>)problems;
    });

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            if (!_disposed)
            {
                _disposed = true;
                _connection.Dispose();
            }
        }
    }

    private void CompleteRoundCore(SqliteTransaction tx, long round, string sha, string names)
    {
        RequireRunning(tx, round, "complete");
        Execute(
            _connection,
            tx,
            "UPDATE rounds SET status = 'completed', ended_utc = $now, model_sha256 = $sha, participants = $p WHERE round = $round;",
            ("$now", Now()),
            ("$sha", sha),
            ("$p", names),
            ("$round", round));
    }

    /// <summary>
    /// Deletes, inside <paramref name="tx"/>, every model version older than the newest <paramref name="keep"/> (0: none),
    /// except those something still reads: the latest version (the current model, which agents download and the next
    /// round starts from), the version the saved server-optimizer moments go with, and the base version
    /// (<c>model_version</c> of its configuration) of any round still running. Returns the deleted versions, oldest first.
    /// The deletion is also recorded, in the same transaction, as a ledger entry of kind <see cref="ModelsPrunedKind"/>
    /// for <paramref name="round"/> ({model_version, keep, pruned{version: sha256}}): the bytes and rows are gone, so an
    /// aggregator killed before it audited the deletion (<c>models.pruned</c>) logs it at its next start from this entry.
    /// </summary>
    private List<ModelRecord> PruneModelsCore(SqliteTransaction tx, int keep, long round, long version)
    {
        if (keep == 0)
        {
            return [];
        }

        const string Doomed = """
            WHERE version NOT IN (SELECT version FROM models ORDER BY version DESC LIMIT $keep)
              AND version <> (SELECT MAX(version) FROM models)
              AND version NOT IN (SELECT model_version FROM server_optimizer)
              AND version NOT IN (SELECT json_extract(configuration, '$.model_version') FROM rounds
                                  WHERE status = 'running' AND json_valid(configuration) AND json_extract(configuration, '$.model_version') IS NOT NULL)
            """;
        List<ModelRecord> doomed = ReadModels(tx, "main", Doomed, ("$keep", (long)keep));
        if (doomed.Count > 0)
        {
            Execute(_connection, tx, $"DELETE FROM models {Doomed};", ("$keep", (long)keep));
            var entry = new System.Text.Json.Nodes.JsonObject
            {
                ["model_version"] = version,
                ["keep"] = keep,
                ["pruned"] = new System.Text.Json.Nodes.JsonObject(doomed.Select(m =>
                    KeyValuePair.Create(m.Version.ToString(CultureInfo.InvariantCulture), (System.Text.Json.Nodes.JsonNode?)m.Sha256))),
            };
            InsertLedgerCore(tx, round, ModelsPrunedKind, entry.ToJsonString());
        }

        return doomed;
    }

    /// <summary>
    /// Inserts model <paramref name="version"/>'s row with <c>zeroblob(size)</c> for its bytes (written next with
    /// incremental blob I/O); versions only increase.
    /// </summary>
    private void InsertModelRow(SqliteTransaction tx, long version, long round, long size, string sha)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        long latest = (long)Scalar(_connection, tx, "SELECT COALESCE(MAX(version), -1) FROM models;")!;
        if (version <= latest)
        {
            throw new InvalidOperationException($"Cannot store model version {version}: version {latest} is already stored and versions only increase.");
        }

        Execute(
            _connection,
            tx,
            "INSERT INTO models (version, round, sha256, size_bytes, created_utc, bytes) VALUES ($v, $round, $sha, $size, $now, zeroblob($size));",
            ("$v", version),
            ("$round", round == 0 ? DBNull.Value : (object)round),
            ("$sha", sha),
            ("$size", size),
            ("$now", Now()));
    }

    /// <summary>
    /// Inserts model <paramref name="version"/> without copying its bytes: the row is inserted with
    /// <c>zeroblob(size)</c> in its last column (SQLite then records the zeros without materializing them, where a bound
    /// blob would be copied twice in native memory: the parameter, then the record), and the bytes are written into the
    /// row's pages with incremental blob I/O, <see cref="ModelWriteBlock"/> bytes at a time, inside <paramref name="tx"/>.
    /// </summary>
    private void SaveModelCore(SqliteTransaction tx, long version, long round, ReadOnlySpan<byte> bytes, string sha)
    {
        InsertModelRow(tx, version, round, bytes.Length, sha);
        using var blob = new SqliteBlob(_connection, "models", "bytes", version); // version is the rowid (INTEGER PRIMARY KEY)
        for (int offset = 0; offset < bytes.Length; offset += ModelWriteBlock)
        {
            blob.Write(bytes.Slice(offset, Math.Min(ModelWriteBlock, bytes.Length - offset)));
        }
    }

    /// <summary>
    /// Inserts model <paramref name="version"/> as <see cref="SaveModelCore(SqliteTransaction, long, long, ReadOnlySpan{byte}, string)"/>
    /// does, its <paramref name="size"/> bytes copied from <paramref name="source"/> <see cref="ModelCopyBlock"/> bytes at a
    /// time (pooled) and hashed as they go, inside <paramref name="tx"/>; throws (so the caller's transaction is rolled back)
    /// if the stream ends early or the bytes do not hash to <paramref name="sha"/>.
    /// </summary>
    private void SaveModelCore(SqliteTransaction tx, long version, long round, Stream source, long size, string sha)
    {
        InsertModelRow(tx, version, round, size, sha);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ModelCopyBlock);
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            using var blob = new SqliteBlob(_connection, "models", "bytes", version); // version is the rowid (INTEGER PRIMARY KEY)
            long written = 0;
            while (written < size)
            {
                int read = source.Read(buffer, 0, (int)Math.Min(ModelCopyBlock, size - written));
                if (read == 0)
                {
                    throw new InvalidDataException(
                        $"The bytes given for model version {version} of '{Path}' end after {written} of the {size} bytes announced; nothing was written.");
                }

                blob.Write(buffer, 0, read);
                hash.AppendData(buffer, 0, read);
                written += read;
            }

            string actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (!string.Equals(actual, sha, StringComparison.Ordinal))
            {
                throw new InvalidDataException(
                    $"The bytes given for model version {version} of '{Path}' hash to SHA-256 {actual}, not the given {sha}; nothing was written.");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The bytes left in a seekable model stream: a positive multiple of 4 (float32 values).</summary>
    private long StreamedModelSize(Stream source, long version)
    {
        if (!source.CanRead || !source.CanSeek)
        {
            throw new ArgumentException("The model's bytes must come from a readable, seekable stream (its length is the model's size).", nameof(source));
        }

        long size = source.Length - source.Position;
        if (size <= 0 || size % sizeof(float) != 0)
        {
            throw new InvalidDataException(
                $"The bytes given for model version {version} of '{Path}' are {size} bytes, not a positive multiple of 4 (float32 values); nothing was written.");
        }

        return size;
    }

    /// <summary>
    /// Replaces the saved server-optimizer state with <paramref name="moments"/> for model <paramref name="version"/>
    /// (deletes it when null): inserted as zeroblobs and written with incremental blob I/O, encoded little-endian a block
    /// at a time from the optimizer's own arrays, inside <paramref name="tx"/>.
    /// </summary>
    private void SaveServerOptimizerCore(SqliteTransaction tx, long version, ServerOptimizerMoments? moments)
    {
        Execute(_connection, tx, "DELETE FROM server_optimizer;");
        if (moments is null)
        {
            return;
        }

        Execute(
            _connection,
            tx,
            "INSERT INTO server_optimizer (model_version, kind, steps, parameter_count, first, second) VALUES ($v, $kind, $steps, $count, zeroblob($first), zeroblob($second));",
            ("$v", version),
            ("$kind", moments.Kind),
            ("$steps", moments.Steps),
            ("$count", (long)moments.First.Length),
            ("$first", (long)moments.First.Length * sizeof(double)),
            ("$second", (long)moments.Second.Length * sizeof(double)));
        WriteDoubles(version, "first", moments.First.Span);
        WriteDoubles(version, "second", moments.Second.Span);
    }

    private void WriteDoubles(long version, string column, ReadOnlySpan<double> values)
    {
        if (values.IsEmpty)
        {
            return;
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(ModelCopyBlock);
        try
        {
            using var blob = new SqliteBlob(_connection, "server_optimizer", column, version); // model_version is the rowid
            int perBlock = ModelCopyBlock / sizeof(double);
            for (int offset = 0; offset < values.Length; offset += perBlock)
            {
                int n = Math.Min(perBlock, values.Length - offset);
                for (int i = 0; i < n; i++)
                {
                    BinaryPrimitives.WriteDoubleLittleEndian(buffer.AsSpan(i * sizeof(double)), values[offset + i]);
                }

                blob.Write(buffer, 0, n * sizeof(double));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private double[] ReadDoubles(long version, string column, int count)
    {
        double[] values = new double[count];
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ModelCopyBlock);
        try
        {
            using var blob = new SqliteBlob(_connection, "server_optimizer", column, version, readOnly: true);
            int perBlock = ModelCopyBlock / sizeof(double);
            for (int offset = 0; offset < count; offset += perBlock)
            {
                int n = Math.Min(perBlock, count - offset);
                blob.ReadExactly(buffer, 0, n * sizeof(double));
                for (int i = 0; i < n; i++)
                {
                    values[offset + i] = BinaryPrimitives.ReadDoubleLittleEndian(buffer.AsSpan(i * sizeof(double)));
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return values;
    }

    private List<string> TableNames(SqliteTransaction tx, string schema)
    {
        var tables = new List<string>();
        using SqliteCommand cmd = Command(_connection, tx, $"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name;");
        using SqliteDataReader reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }

    private List<ModelRecord> ReadModels(SqliteTransaction? tx, string schema, string where, params (string Name, object Value)[] parameters)
    {
        var models = new List<ModelRecord>();
        using SqliteCommand cmd = Command(_connection, tx, $"SELECT version, round, sha256, size_bytes, created_utc FROM {schema}.models {where} ORDER BY version;", parameters);
        using SqliteDataReader reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            models.Add(new ModelRecord(reader.GetInt64(0), reader.IsDBNull(1) ? 0 : reader.GetInt64(1), reader.GetString(2), reader.GetInt64(3), ParseTime(reader.GetString(4))));
        }

        return models;
    }

    private string Status(SqliteTransaction? tx, long round) =>
        (string?)Scalar(_connection, tx, "SELECT status FROM rounds WHERE round = $round;", ("$round", round))
        ?? throw new InvalidOperationException($"Round {round} does not exist in '{Path}'.");

    private void RequireRunning(SqliteTransaction tx, long round, string action)
    {
        string status = Status(tx, round);
        if (status != "running")
        {
            throw new InvalidOperationException($"Cannot {action} round {round}: it is {status}.");
        }
    }

    private List<RoundRecord> ReadRounds(string where, params (string Name, object Value)[] parameters)
    {
        var rounds = new List<RoundRecord>();
        using (SqliteCommand cmd = Command(
                   _connection,
                   null,
                   $"SELECT round, status, configuration, started_utc, ended_utc, model_sha256, abort_reason, participants FROM rounds {where} ORDER BY round;",
                   parameters))
        using (SqliteDataReader reader = cmd.ExecuteReader())
        {
            while (reader.Read())
            {
                rounds.Add(new RoundRecord(
                    reader.GetInt64(0),
                    reader.GetString(1) switch
                    {
                        "running" => RoundStatus.Running,
                        "completed" => RoundStatus.Completed,
                        _ => RoundStatus.Aborted,
                    },
                    reader.GetString(2),
                    ParseTime(reader.GetString(3)),
                    reader.IsDBNull(4) ? null : ParseTime(reader.GetString(4)),
                    reader.IsDBNull(5) ? null : reader.GetString(5),
                    reader.IsDBNull(6) ? null : reader.GetString(6),
                    JsonSerializer.Deserialize<string[]>(reader.GetString(7)) ?? [],
                    []));
            }
        }

        for (int i = 0; i < rounds.Count; i++)
        {
            var stages = new List<StageRecord>();
            using SqliteCommand cmd = Command(
                _connection,
                null,
                "SELECT stage, participants, recorded_utc FROM round_stages WHERE round = $round ORDER BY seq;",
                ("$round", rounds[i].Round));
            using SqliteDataReader reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                stages.Add(new StageRecord(reader.GetString(0), JsonSerializer.Deserialize<string[]>(reader.GetString(1)) ?? [], ParseTime(reader.GetString(2))));
            }

            rounds[i] = rounds[i] with { Stages = stages };
        }

        return rounds;
    }

    private T Run<T>(Func<T> action)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            try
            {
                return action();
            }
            catch (SqliteException ex)
            {
                throw Translate(ex, Path);
            }
        }
    }

    /// <summary>As <see cref="Run{T}"/> for an action over a model's bytes (a span, which a closure cannot hold).</summary>
    private void Run(ReadOnlySpan<byte> modelBytes, ModelBytesAction action)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            try
            {
                action(modelBytes);
            }
            catch (SqliteException ex)
            {
                throw Translate(ex, Path);
            }
        }
    }

    private void Run(Action action) => Run(() =>
    {
        action();
        return 0;
    });

    private string Now() => _time.GetUtcNow().UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static DateTimeOffset ParseTime(string text) =>
        DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    private static void Migrate(SqliteConnection connection, string path, TimeProvider time)
    {
        var tables = new List<string>();
        using (SqliteCommand cmd = Command(connection, null, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%';"))
        using (SqliteDataReader reader = cmd.ExecuteReader())
        {
            while (reader.Read())
            {
                tables.Add(reader.GetString(0));
            }
        }

        if (tables.Count > 0 && !tables.Contains("schema_version"))
        {
            throw new InvalidDataException(
                $"'{path}' is an SQLite database but not a SecureFed aggregator database (it has tables {string.Join(", ", tables)} and no schema_version); it was left untouched.");
        }

        using SqliteTransaction tx = connection.BeginTransaction();
        Execute(connection, tx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_utc TEXT NOT NULL);");
        long current = (long)Scalar(connection, tx, "SELECT COALESCE(MAX(version), 0) FROM schema_version;")!;
        if (current > StoreSchema.LatestVersion)
        {
            throw new InvalidDataException(
                $"Aggregator database '{path}' has schema version {current}, newer than this build supports ({StoreSchema.LatestVersion}); upgrade SecureFed.");
        }

        for (long version = current + 1; version <= StoreSchema.LatestVersion; version++)
        {
            Execute(connection, tx, StoreSchema.Migrations[version - 1]);
            Execute(
                connection,
                tx,
                "INSERT INTO schema_version (version, applied_utc) VALUES ($v, $now);",
                ("$v", version),
                ("$now", time.GetUtcNow().UtcDateTime.ToString("O", CultureInfo.InvariantCulture)));
        }

        tx.Commit();
    }

    internal static Exception Translate(SqliteException ex, string path) => ex.SqliteErrorCode switch
    {
        SqliteNotADatabase or SqliteCorrupt => new InvalidDataException(
            $"Aggregator database '{path}' is corrupt or not an SQLite database ({ex.Message}); it was left untouched. Restore it from a backup or point the aggregator at another data directory.",
            ex),
        SqliteCantOpen or SqliteReadOnly or SqliteIoError or SqliteFull => new IOException(
            $"Aggregator database '{path}' cannot be opened or written ({ex.Message}); check that the directory exists, is writable and has free space.",
            ex),
        _ => new InvalidOperationException($"Aggregator database '{path}': {ex.Message}", ex),
    };

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? tx, string sql, params (string Name, object Value)[] parameters)
    {
        SqliteCommand cmd = connection.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        foreach ((string name, object value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value);
        }

        return cmd;
    }

    private static int Execute(SqliteConnection connection, SqliteTransaction? tx, string sql, params (string Name, object Value)[] parameters)
    {
        using SqliteCommand cmd = Command(connection, tx, sql, parameters);
        return cmd.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, SqliteTransaction? tx, string sql, params (string Name, object Value)[] parameters)
    {
        using SqliteCommand cmd = Command(connection, tx, sql, parameters);
        object? value = cmd.ExecuteScalar();
        return value is DBNull ? null : value;
    }

    private static string ParticipantsJson(IReadOnlyList<string> participants)
    {
        ArgumentNullException.ThrowIfNull(participants);
        foreach (string p in participants)
        {
            if (string.IsNullOrWhiteSpace(p))
            {
                throw new ArgumentException("Participant names must not be empty.", nameof(participants));
            }
        }

        return JsonSerializer.Serialize(participants.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray());
    }

    private static void RequireJson(string json, string parameterName)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"Not valid JSON: {ex.Message}", parameterName, ex);
        }
    }

    private static string NormalizeSha256(string sha256, string parameterName)
    {
        ArgumentNullException.ThrowIfNull(sha256, parameterName);
        if (sha256.Length != 64 || !sha256.All(char.IsAsciiHexDigit))
        {
            throw new ArgumentException($"'{sha256}' is not a SHA-256 digest (64 hex characters).", parameterName);
        }

        return sha256.ToLowerInvariant();
    }

    private static string VerifiedSha256(ReadOnlySpan<byte> bytes, string sha256)
    {
        string expected = NormalizeSha256(sha256, nameof(sha256));
        string actual = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (!string.Equals(actual, expected, StringComparison.Ordinal))
        {
            throw new ArgumentException($"The model bytes hash to SHA-256 {actual}, not the given {expected}.", nameof(sha256));
        }

        return actual;
    }

    private delegate void ModelBytesAction(ReadOnlySpan<byte> modelBytes);
}
