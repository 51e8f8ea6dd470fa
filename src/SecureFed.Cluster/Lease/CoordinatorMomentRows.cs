using System.Data;
using System.Globalization;
using System.Security.Cryptography;
using Npgsql;
using NpgsqlTypes;
using SecureFed.Aggregator.Persistence;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The server update rule's moments (<c>SecureFed:ServerOptimizer</c> momentum or adam: 8 or 16 bytes per parameter) in
/// table <c>securefed_coordinator_moments</c>: one row per federation and model version, with the rule, its step count,
/// the parameter count, the sizes of the two moments, their SHA-256 (of the first moment's bytes then the second's) and
/// the lease epoch that wrote it; the first moment in column <c>bytes</c>, the second in column <c>second</c>, so that
/// each stays under PostgreSQL's 1 GB limit on one value wherever the round store (SQLite, 10⁹ bytes per blob) holds them,
/// i.e. up to 125 million parameters (a row written before session 19 holds both in <c>bytes</c>, <c>second</c> null). The round store is saved without them (<see cref="AggregatorStore.SnapshotWithoutModelBytesTo"/>
/// keeps only their model version, rule, steps and parameter count), so the moments of a model version are sent once.
/// Written inside <see cref="PostgresCoordinatorState"/>'s fenced transaction, so the rows always mirror the round store
/// saved in the same transaction: its one row of moments or, when it saves none, none. A successor writes them back into
/// the restored round store and refuses, naming both sides, moments that are missing or do not go with the round store's
/// model version: never a silent restart from zero moments.
/// </summary>
internal static class CoordinatorMomentRows
{
    /// <summary>The table, idempotent.</summary>
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS securefed_coordinator_moments (
            federation text NOT NULL,
            model_version bigint NOT NULL CHECK (model_version >= 0),
            kind text NOT NULL,
            steps bigint NOT NULL CHECK (steps >= 0),
            parameter_count bigint NOT NULL CHECK (parameter_count >= 0),
            first_bytes bigint NOT NULL CHECK (first_bytes >= 0),
            second_bytes bigint NOT NULL CHECK (second_bytes >= 0),
            sha256 text NOT NULL,
            epoch bigint NOT NULL,
            bytes bytea NOT NULL,
            saved_utc timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (federation, model_version)
        );
        ALTER TABLE securefed_coordinator_moments ADD COLUMN IF NOT EXISTS second bytea;
        """;

    /// <summary>
    /// Makes the rows of <paramref name="federation"/> mirror <paramref name="moments"/>, inside the fenced
    /// <paramref name="transaction"/>: the moments of its model version sent once (read twice from the store: hashed, then
    /// streamed; the database hashes what it received and a mismatch fails the save), the rows of other versions deleted.
    /// Returns the rows and bytes written.
    /// </summary>
    /// <exception cref="InvalidDataException">The database holds other moments for the same model version (a fork), or the
    /// bytes sent do not hash as read; nothing is written.</exception>
    public static async Task<(int Rows, long Bytes)> SaveAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string federation, long epoch, CoordinatorMoments moments, CancellationToken cancellationToken)
    {
        List<(ServerOptimizerRecord Row, string Sha)> stored = await ReadAsync(connection, transaction, federation, cancellationToken).ConfigureAwait(false);
        ServerOptimizerRecord? local = moments.Saved;
        int rows = 0;
        long bytes = 0;
        if (local is not null)
        {
            if (!local.HasBytes)
            {
                throw new InvalidDataException(Invariant($"the coordinator's round store saves the {local.Kind} moments of model version {local.ModelVersion} without their bytes; nothing was saved"));
            }

            ServerOptimizerRecord? same = stored.Select(s => s.Row).FirstOrDefault(r => r.ModelVersion == local.ModelVersion);
            if (same is not null && same != local)
            {
                throw new InvalidDataException(Invariant(
                    $"the cluster's database holds {Describe(same)} for model version {same.ModelVersion}, but the coordinator's round store saves {Describe(local)} with that version (the local state forked from the saved one); nothing was saved"));
            }

            if (same is null)
            {
                (string sha, string firstSha, string secondSha) = await HashAsync(moments, local, cancellationToken).ConfigureAwait(false);

                // Each moment goes as its own value, in a statement of its own (PostgreSQL takes at most 1 GB in one value
                // and in one message), through Npgsql's write buffer, never whole; the database hashes what it received.
                await using (var first = new StreamWindow(moments.Open(local.ModelVersion), 0, local.FirstBytes))
                await using (var insert = new NpgsqlCommand(
                    """
                    INSERT INTO securefed_coordinator_moments (federation, model_version, kind, steps, parameter_count, first_bytes, second_bytes, sha256, epoch, bytes, second)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, ''::bytea)
                    RETURNING encode(sha256(bytes), 'hex')
                    """,
                    connection,
                    transaction))
                {
                    insert.Parameters.Add(new NpgsqlParameter { Value = federation, NpgsqlDbType = NpgsqlDbType.Text });
                    insert.Parameters.Add(new NpgsqlParameter { Value = local.ModelVersion, NpgsqlDbType = NpgsqlDbType.Bigint });
                    insert.Parameters.Add(new NpgsqlParameter { Value = local.Kind, NpgsqlDbType = NpgsqlDbType.Text });
                    insert.Parameters.Add(new NpgsqlParameter { Value = local.Steps, NpgsqlDbType = NpgsqlDbType.Bigint });
                    insert.Parameters.Add(new NpgsqlParameter { Value = local.ParameterCount, NpgsqlDbType = NpgsqlDbType.Bigint });
                    insert.Parameters.Add(new NpgsqlParameter { Value = local.FirstBytes, NpgsqlDbType = NpgsqlDbType.Bigint });
                    insert.Parameters.Add(new NpgsqlParameter { Value = local.SecondBytes, NpgsqlDbType = NpgsqlDbType.Bigint });
                    insert.Parameters.Add(new NpgsqlParameter { Value = sha, NpgsqlDbType = NpgsqlDbType.Text });
                    insert.Parameters.Add(new NpgsqlParameter { Value = epoch, NpgsqlDbType = NpgsqlDbType.Bigint });
                    insert.Parameters.Add(new NpgsqlParameter { Value = first, NpgsqlDbType = NpgsqlDbType.Bytea });
                    insert.CommandTimeout = PostgresCoordinatorState.ModelCommandTimeoutSeconds(insert.CommandTimeout, local.FirstBytes);
                    CheckReceived(local, "first", firstSha, await insert.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
                }

                await using (var second = new StreamWindow(moments.Open(local.ModelVersion), local.FirstBytes, local.SecondBytes))
                await using (var update = new NpgsqlCommand(
                    "UPDATE securefed_coordinator_moments SET second = $1 WHERE federation = $2 AND model_version = $3 RETURNING encode(sha256(second), 'hex')",
                    connection,
                    transaction))
                {
                    update.Parameters.Add(new NpgsqlParameter { Value = second, NpgsqlDbType = NpgsqlDbType.Bytea });
                    update.Parameters.Add(new NpgsqlParameter { Value = federation, NpgsqlDbType = NpgsqlDbType.Text });
                    update.Parameters.Add(new NpgsqlParameter { Value = local.ModelVersion, NpgsqlDbType = NpgsqlDbType.Bigint });
                    update.CommandTimeout = PostgresCoordinatorState.ModelCommandTimeoutSeconds(update.CommandTimeout, local.SecondBytes);
                    CheckReceived(local, "second", secondSha, await update.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false));
                }

                rows = 1;
                bytes = local.Bytes;
            }
        }

        // The round store keeps one version's moments (or none): so do the rows.
        await using var delete = new NpgsqlCommand("DELETE FROM securefed_coordinator_moments WHERE federation = $1 AND model_version <> $2", connection, transaction);
        delete.Parameters.Add(new NpgsqlParameter { Value = federation, NpgsqlDbType = NpgsqlDbType.Text });
        delete.Parameters.Add(new NpgsqlParameter { Value = local?.ModelVersion ?? -1, NpgsqlDbType = NpgsqlDbType.Bigint });
        await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return (rows, bytes);
    }

    /// <summary>
    /// Writes the saved moments back into <paramref name="store"/> (a round store restored without them), checking that
    /// they go with its model version: the round store's moments must be those of its latest model version, the row of
    /// that version must exist with the same rule, steps and parameter count, its bytes must hash to its SHA-256, and the
    /// database must hold no moments the round store does not save. Returns the rows and bytes written.
    /// </summary>
    /// <exception cref="InvalidDataException">The moments are missing, do not go with the model version, or are corrupt (the message names both sides).</exception>
    public static async Task<(int Rows, long Bytes)> RestoreAsync(NpgsqlDataSource dataSource, string federation, AggregatorStore store, CancellationToken cancellationToken)
    {
        ServerOptimizerRecord? local = store.ServerOptimizerMetadata();
        long latest = store.LatestModel()?.Version ?? -1;
        List<(ServerOptimizerRecord Row, string Sha)> stored;
        NpgsqlConnection connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            stored = await ReadAsync(connection, null, federation, cancellationToken).ConfigureAwait(false);
        }

        string held = stored.Count == 0 ? "none" : string.Join(", ", stored.Select(s => Invariant($"{Describe(s.Row)} of model version {s.Row.ModelVersion}")));
        if (local is null)
        {
            if (stored.Count > 0)
            {
                throw new InvalidDataException(Invariant(
                    $"the cluster's database (table securefed_coordinator_moments) holds {held} for federation '{federation}', but the saved round store (latest model version {latest}) saves no server optimizer moments: they are saved together, so one of them was changed by other means; nothing was restored"));
            }

            return (0, 0);
        }

        if (local.ModelVersion != latest)
        {
            throw new InvalidDataException(Invariant(
                $"the saved round store of federation '{federation}' keeps {Describe(local)} of model version {local.ModelVersion}, but its latest model is version {latest}: they are saved in one transaction, so the state was changed by other means; nothing was restored"));
        }

        if (local.HasBytes)
        {
            return (0, 0); // a round store saved whole: the moments are in it
        }

        (ServerOptimizerRecord Row, string Sha) match = stored.FirstOrDefault(s => s.Row.ModelVersion == local.ModelVersion);
        if (match.Row is null)
        {
            throw new InvalidDataException(Invariant(
                $"the {local.Kind} moments of model version {local.ModelVersion} ({local.Steps} steps, {local.ParameterCount} parameters) of federation '{federation}' are missing from the cluster's database (table securefed_coordinator_moments holds {held}), though the saved round store's model version {local.ModelVersion} goes with them; nothing was restored"));
        }

        if (match.Row.Kind != local.Kind || match.Row.Steps != local.Steps || match.Row.ParameterCount != local.ParameterCount)
        {
            throw new InvalidDataException(Invariant(
                $"the moments of model version {local.ModelVersion} of federation '{federation}' in the cluster's database (table securefed_coordinator_moments) are {Describe(match.Row)} for {match.Row.ParameterCount} parameters, but the saved round store's model version {local.ModelVersion} goes with {Describe(local)} for {local.ParameterCount} parameters; nothing was restored"));
        }

        if (stored.Count > 1)
        {
            throw new InvalidDataException(Invariant(
                $"the cluster's database (table securefed_coordinator_moments) holds {held} for federation '{federation}', but only the moments of the saved round store's model version {local.ModelVersion} are kept; nothing was restored"));
        }

        // Column bytes then column second, each read from the connection as it is written into the store (one query
        // each: a row of both could exceed the 1 GB a message may carry), never whole.
        NpgsqlConnection reading = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (reading.ConfigureAwait(false))
        {
            Stream column = new ColumnsStream(reading, federation, local.ModelVersion);
            await using (column.ConfigureAwait(false))
            {
                try
                {
                    store.WriteServerOptimizerBytes(match.Row, match.Sha, column);
                }
                catch (InvalidDataException ex)
                {
                    throw new InvalidDataException(Invariant(
                        $"the moments of model version {local.ModelVersion} of federation '{federation}' in the cluster's database (table securefed_coordinator_moments) are corrupt: {ex.Message}"), ex);
                }
            }
        }

        return (1, match.Row.Bytes);
    }

    private static async Task<List<(ServerOptimizerRecord Row, string Sha)>> ReadAsync(
        NpgsqlConnection connection, NpgsqlTransaction? transaction, string federation, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "SELECT model_version, kind, steps, parameter_count, first_bytes, second_bytes, sha256 FROM securefed_coordinator_moments WHERE federation = $1 ORDER BY model_version",
            connection,
            transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = federation, NpgsqlDbType = NpgsqlDbType.Text });
        var rows = new List<(ServerOptimizerRecord, string)>();
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add((new ServerOptimizerRecord(reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5)), reader.GetString(6)));
        }

        return rows;
    }

    private static void CheckReceived(ServerOptimizerRecord local, string moment, string sha, object? received)
    {
        if (received is not string actual || actual != sha)
        {
            throw new InvalidDataException(Invariant(
                $"the {moment} moment of model version {local.ModelVersion} reached the cluster's database as SHA-256 {received}, but hashed to {sha} when read from the coordinator's round store; nothing was saved"));
        }
    }

    /// <summary>The SHA-256 of the moments (first then second), and of each, in one read of the round store's stream.</summary>
    private static async Task<(string Whole, string First, string Second)> HashAsync(CoordinatorMoments moments, ServerOptimizerRecord local, CancellationToken cancellationToken)
    {
        using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var first = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var second = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Stream stream = moments.Open(local.ModelVersion);
        await using (stream.ConfigureAwait(false))
        {
            if (stream.Length - stream.Position != local.Bytes)
            {
                throw new InvalidDataException(Invariant($"the moments of model version {local.ModelVersion} in the coordinator's round store hold {stream.Length - stream.Position} bytes, their record says {local.Bytes}; nothing was saved"));
            }

            byte[] buffer = new byte[1 << 20];
            long at = 0;
            int read;
            while ((read = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, at < local.FirstBytes ? local.FirstBytes - at : buffer.Length)), cancellationToken).ConfigureAwait(false)) > 0)
            {
                whole.AppendData(buffer, 0, read);
                (at < local.FirstBytes ? first : second).AppendData(buffer, 0, read);
                at += read;
            }
        }

        return (Convert.ToHexStringLower(whole.GetHashAndReset()), Convert.ToHexStringLower(first.GetHashAndReset()), Convert.ToHexStringLower(second.GetHashAndReset()));
    }

    private static string Describe(ServerOptimizerRecord row) => Invariant($"the {row.Kind} moments after {row.Steps} steps");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Column <c>bytes</c> then column <c>second</c> (when not null: a row from before session 19 holds both moments in
    /// <c>bytes</c>) of one row, each from a sequential-access query of its own on <paramref name="connection"/>, read as
    /// one stream as it arrives, never whole.
    /// </summary>
    private sealed class ColumnsStream(NpgsqlConnection connection, string federation, long version) : Stream
    {
        private NpgsqlCommand? _command;
        private NpgsqlDataReader? _reader;
        private Stream? _current;
        private int _next;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            while (true)
            {
                if (_current is null && !OpenNext())
                {
                    return 0;
                }

                int read = _current!.Read(buffer);
                if (read > 0 || buffer.IsEmpty)
                {
                    return read;
                }

                EndColumn();
            }
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                EndColumn();
            }

            base.Dispose(disposing);
        }

        private bool OpenNext()
        {
            string column = _next switch { 0 => "bytes", 1 => "second", _ => "" };
            _next++;
            if (column.Length == 0)
            {
                return false;
            }

            _command = new NpgsqlCommand($"SELECT {column} FROM securefed_coordinator_moments WHERE federation = $1 AND model_version = $2", connection);
            _command.Parameters.Add(new NpgsqlParameter { Value = federation, NpgsqlDbType = NpgsqlDbType.Text });
            _command.Parameters.Add(new NpgsqlParameter { Value = version, NpgsqlDbType = NpgsqlDbType.Bigint });
            _reader = _command.ExecuteReader(CommandBehavior.SequentialAccess);
            if (!_reader.Read())
            {
                EndColumn();
                throw new InvalidDataException(Invariant($"the moments of model version {version} of federation '{federation}' left the cluster's database while they were restored; nothing was restored"));
            }

            if (_reader.IsDBNull(0))
            {
                EndColumn();
                return false;
            }

            _current = _reader.GetStream(0);
            return true;
        }

        private void EndColumn()
        {
            _current?.Dispose();
            _current = null;
            _reader?.Dispose();
            _reader = null;
            _command?.Dispose();
            _command = null;
        }
    }
}
