using System.Security.Cryptography;
using Npgsql;
using NpgsqlTypes;
using SecureFed.Cluster.Membership;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The coordinator's state in the cluster's PostgreSQL database (<see cref="CoordinatorSnapshot"/>'s files, one row per
/// file in table <c>securefed_coordinator_state</c>, with its SHA-256 and the lease epoch that wrote it). Every save is
/// one transaction fenced by the lease (<see cref="PostgresCoordinatorLease.FenceAsync"/>): a silo that lost the lease
/// cannot overwrite what its successor continues from. Only files that changed since this instance's last save are sent.
/// </summary>
public sealed class PostgresCoordinatorState
{
    /// <summary>The schema, idempotent.</summary>
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS securefed_coordinator_state (
            federation text NOT NULL,
            name text NOT NULL,
            epoch bigint NOT NULL,
            sha256 text NOT NULL,
            bytes bytea NOT NULL,
            saved_utc timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (federation, name)
        );
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresCoordinatorLease _lease;
    private readonly Dictionary<string, string> _saved = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _schemaReady;

    /// <summary>The state of <paramref name="lease"/>'s federation, in the same database.</summary>
    public PostgresCoordinatorState(NpgsqlDataSource dataSource, PostgresCoordinatorLease lease)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(lease);
        _dataSource = dataSource;
        _lease = lease;
    }

    /// <summary>
    /// Saves the files that changed, fenced by <paramref name="holder"/>'s <paramref name="epoch"/>; returns how many
    /// were written.
    /// </summary>
    /// <exception cref="Aggregator.CoordinatorLeaseLostException">The lease is no longer this holder's; nothing was written.</exception>
    public Task<int> SaveAsync(IReadOnlyDictionary<string, byte[]> files, string holder, long epoch, CancellationToken cancellationToken) =>
        SaveAsync(files, new Dictionary<string, string>(StringComparer.Ordinal), holder, epoch, cancellationToken);

    /// <summary>
    /// As <see cref="SaveAsync(IReadOnlyDictionary{string, byte[]}, string, long, CancellationToken)"/>, with the large
    /// files (the round store, which holds every model version) given as paths of files on disk
    /// (<paramref name="filesOnDisk"/>: name → path): each is hashed and sent as a stream, never held in memory. The
    /// caller keeps (and deletes) those files.
    /// </summary>
    /// <exception cref="Aggregator.CoordinatorLeaseLostException">The lease is no longer this holder's; nothing was written.</exception>
    public async Task<int> SaveAsync(IReadOnlyDictionary<string, byte[]> files, IReadOnlyDictionary<string, string> filesOnDisk, string holder, long epoch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(filesOnDisk);
        if (filesOnDisk.Keys.FirstOrDefault(files.ContainsKey) is string twice)
        {
            throw new ArgumentException($"'{twice}' is given both in memory and on disk.", nameof(filesOnDisk));
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
            var all = files.Select(f => (f.Key, Bytes: (byte[]?)f.Value, Path: (string?)null, Sha: Convert.ToHexStringLower(SHA256.HashData(f.Value)))).ToList();
            foreach ((string name, string path) in filesOnDisk)
            {
                FileStream hashed = File.OpenRead(path);
                await using (hashed.ConfigureAwait(false))
                {
                    all.Add((name, null, path, Convert.ToHexStringLower(await SHA256.HashDataAsync(hashed, cancellationToken).ConfigureAwait(false))));
                }
            }

            var changed = all.Where(f => !_saved.TryGetValue(f.Key, out string? sha) || sha != f.Sha).ToList();
            NpgsqlConnection connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (transaction.ConfigureAwait(false))
                {
                    // Even with nothing changed the fence runs: a commit point of a silo that lost the lease fails.
                    await _lease.FenceAsync(connection, transaction, holder, epoch, cancellationToken).ConfigureAwait(false);
                    foreach ((string name, byte[]? bytes, string? path, string sha) in changed)
                    {
                        // A file on disk goes as a stream, through Npgsql's write buffer.
                        FileStream? stream = path is null ? null : File.OpenRead(path);
                        try
                        {
                            await using var command = new NpgsqlCommand(
                                """
                                INSERT INTO securefed_coordinator_state (federation, name, epoch, sha256, bytes) VALUES ($1, $2, $3, $4, $5)
                                ON CONFLICT (federation, name) DO UPDATE SET epoch = EXCLUDED.epoch, sha256 = EXCLUDED.sha256, bytes = EXCLUDED.bytes, saved_utc = now()
                                """,
                                connection,
                                transaction);
                            command.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
                            command.Parameters.Add(new NpgsqlParameter { Value = name, NpgsqlDbType = NpgsqlDbType.Text });
                            command.Parameters.Add(new NpgsqlParameter { Value = epoch, NpgsqlDbType = NpgsqlDbType.Bigint });
                            command.Parameters.Add(new NpgsqlParameter { Value = sha, NpgsqlDbType = NpgsqlDbType.Text });
                            command.Parameters.Add(new NpgsqlParameter { Value = (object?)bytes ?? stream!, NpgsqlDbType = NpgsqlDbType.Bytea });
                            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                        }
                        finally
                        {
                            if (stream is not null)
                            {
                                await stream.DisposeAsync().ConfigureAwait(false);
                            }
                        }
                    }

                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            foreach ((string name, _, _, string sha) in changed)
            {
                _saved[name] = sha;
            }

            return changed.Count;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Every stored file of the federation (empty when no coordinator ever saved), each checked against its SHA-256.</summary>
    /// <exception cref="InvalidDataException">A stored file does not match its digest (the message names it).</exception>
    public async Task<IReadOnlyDictionary<string, byte[]>> LoadAsync(CancellationToken cancellationToken)
    {
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using NpgsqlCommand command = _dataSource.CreateCommand("SELECT name, sha256, bytes FROM securefed_coordinator_state WHERE federation = $1 ORDER BY name");
        command.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            string name = reader.GetString(0);
            string sha = reader.GetString(1);
            byte[] bytes = reader.GetFieldValue<byte[]>(2);
            string actual = Convert.ToHexStringLower(SHA256.HashData(bytes));
            if (actual != sha)
            {
                throw new InvalidDataException($"the coordinator state '{name}' of federation '{_lease.Federation}' in the cluster's database is corrupt: recorded SHA-256 {sha}, bytes hash to {actual}");
            }

            files[name] = bytes;
        }

        return files;
    }

    private async Task EnsureSchemaAsync(CancellationToken cancellationToken)
    {
        if (_schemaReady)
        {
            return;
        }

        await _lease.EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await PostgresClusteringSchema.CreateUnderLockAsync(_dataSource, Schema, cancellationToken).ConfigureAwait(false);

        _schemaReady = true;
    }
}
