using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using Orleans.Serialization;
using Orleans.Storage;
using SecureFed.Cluster.Membership;

namespace SecureFed.Cluster.Storage;

/// <summary>
/// Orleans grain storage on PostgreSQL through Npgsql: one row per (grain type, grain id, state name) in table
/// <c>securefed_grain_state</c> (created if missing), the state serialized with the Orleans serializer, and optimistic
/// concurrency on an integer version (the ETag): a write whose ETag is not the stored one is refused with
/// <see cref="InconsistentStateException"/>, so two activations of one grain cannot overwrite each other.
/// </summary>
internal sealed class PostgresGrainStorage : IGrainStorage
{
    /// <summary>The schema, idempotent.</summary>
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS securefed_grain_state (
            grain_type text NOT NULL,
            grain_id text NOT NULL,
            state_name text NOT NULL,
            version bigint NOT NULL,
            payload bytea NOT NULL,
            modified_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (grain_type, grain_id, state_name)
        );
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly Serializer _serializer;
    private readonly SemaphoreSlim _schemaGate = new(1, 1);
    private volatile bool _schemaReady;

    public PostgresGrainStorage(NpgsqlDataSource dataSource, Serializer serializer)
    {
        _dataSource = dataSource;
        _serializer = serializer;
    }

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        await EnsureSchemaAsync().ConfigureAwait(false);
        await using NpgsqlCommand command = _dataSource.CreateCommand(
            "SELECT version, payload FROM securefed_grain_state WHERE grain_type = $1 AND grain_id = $2 AND state_name = $3");
        AddKey(command, stateName, grainId);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
        if (await reader.ReadAsync().ConfigureAwait(false))
        {
            long version = reader.GetInt64(0);
            byte[] payload = (byte[])reader.GetValue(1);
            grainState.State = _serializer.Deserialize<T>(payload);
            grainState.ETag = version.ToString(CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
        }
        else
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
        }
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        await EnsureSchemaAsync().ConfigureAwait(false);
        byte[] payload = _serializer.SerializeToArray(grainState.State);
        NpgsqlCommand command;
        if (grainState.ETag is null)
        {
            command = _dataSource.CreateCommand(
                "INSERT INTO securefed_grain_state (grain_type, grain_id, state_name, version, payload) VALUES ($1, $2, $3, 1, $4) ON CONFLICT DO NOTHING RETURNING version");
            AddKey(command, stateName, grainId);
            command.Parameters.Add(new NpgsqlParameter { Value = payload, NpgsqlDbType = NpgsqlDbType.Bytea });
        }
        else
        {
            command = _dataSource.CreateCommand(
                "UPDATE securefed_grain_state SET version = version + 1, payload = $4, modified_at = now() WHERE grain_type = $1 AND grain_id = $2 AND state_name = $3 AND version = $5 RETURNING version");
            AddKey(command, stateName, grainId);
            command.Parameters.Add(new NpgsqlParameter { Value = payload, NpgsqlDbType = NpgsqlDbType.Bytea });
            command.Parameters.Add(new NpgsqlParameter { Value = long.Parse(grainState.ETag, CultureInfo.InvariantCulture), NpgsqlDbType = NpgsqlDbType.Bigint });
        }

        await using (command.ConfigureAwait(false))
        {
            object? version = await command.ExecuteScalarAsync().ConfigureAwait(false);
            if (version is not long written)
            {
                throw new InconsistentStateException(
                    $"the stored state '{stateName}' of grain {grainId} changed since it was read (ETag {grainState.ETag ?? "none"}); not overwritten",
                    storedEtag: "unknown", currentEtag: grainState.ETag ?? "none");
            }

            grainState.ETag = written.ToString(CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
        }
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        ArgumentNullException.ThrowIfNull(grainState);
        await EnsureSchemaAsync().ConfigureAwait(false);
        await using NpgsqlCommand command = _dataSource.CreateCommand(
            "DELETE FROM securefed_grain_state WHERE grain_type = $1 AND grain_id = $2 AND state_name = $3");
        AddKey(command, stateName, grainId);
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
    }

    private static void AddKey(NpgsqlCommand command, string stateName, GrainId grainId)
    {
        command.Parameters.Add(new NpgsqlParameter { Value = grainId.Type.ToString()!, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = grainId.Key.ToString()!, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = stateName, NpgsqlDbType = NpgsqlDbType.Text });
    }

    private async Task EnsureSchemaAsync()
    {
        if (_schemaReady)
        {
            return;
        }

        await _schemaGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!_schemaReady)
            {
                // CREATE TABLE IF NOT EXISTS is not safe against itself in PostgreSQL (two sessions can both miss the table
                // and one fails on pg_type's unique index), so silos starting together queue on the schema lock.
                NpgsqlConnection connection = await _dataSource.OpenConnectionAsync().ConfigureAwait(false);
                await using (connection.ConfigureAwait(false))
                {
                    NpgsqlTransaction transaction = await connection.BeginTransactionAsync().ConfigureAwait(false);
                    await using (transaction.ConfigureAwait(false))
                    {
                        await PostgresClusteringSchema.LockAsync(connection, transaction, CancellationToken.None).ConfigureAwait(false);
                        await using var command = new NpgsqlCommand(Schema, connection, transaction);
                        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
                        await transaction.CommitAsync().ConfigureAwait(false);
                    }
                }

                _schemaReady = true;
            }
        }
        finally
        {
            _schemaGate.Release();
        }
    }
}
