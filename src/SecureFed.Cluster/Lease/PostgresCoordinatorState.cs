using System.Data;
using System.Diagnostics;
using System.Security.Cryptography;
using Npgsql;
using NpgsqlTypes;
using SecureFed.Aggregator.Persistence;
using SecureFed.Cluster.Membership;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The coordinator's state in the cluster's PostgreSQL database (<see cref="CoordinatorSnapshot"/>'s files, one row per
/// file in table <c>securefed_coordinator_state</c>, with its SHA-256 and the lease epoch that wrote it), and the round
/// store's model versions, one row each in table <c>securefed_coordinator_models</c> (keyed by version and SHA-256, with
/// the epoch that wrote it), sent once: the round store itself is saved without model bytes. Every save is one
/// transaction fenced by the lease (<see cref="PostgresCoordinatorLease.FenceAsync"/>): a silo that lost the lease
/// cannot overwrite what its successor continues from, nor add a model row. Only files that changed since this
/// instance's last save, and model versions not yet in the database, are sent. Model rows are never updated; they mirror
/// the round store saved with them: a version the round store pruned (<c>SecureFed:KeepModelVersions</c>) has its row
/// deleted in the same fenced transaction, so the rows hold exactly the versions a takeover restores. The audit log is saved apart too, as append-only rows, one per line, in table
/// <c>securefed_coordinator_audit</c> (<see cref="CoordinatorAuditRows"/>): at every save only the lines the database
/// does not hold yet are sent, under the same fence, and <see cref="SaveAuditAsync"/> sends them between commit points.
/// The server update rule's moments, when the round store keeps any, are saved apart as well, once per model version
/// (<see cref="CoordinatorMomentRows"/>, table <c>securefed_coordinator_moments</c>).
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
        CREATE TABLE IF NOT EXISTS securefed_coordinator_models (
            federation text NOT NULL,
            version bigint NOT NULL,
            sha256 text NOT NULL,
            size_bytes bigint NOT NULL,
            epoch bigint NOT NULL,
            bytes bytea NOT NULL,
            saved_utc timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (federation, version, sha256)
        );
        CREATE TABLE IF NOT EXISTS securefed_coordinator_settings (
            federation text NOT NULL PRIMARY KEY,
            epoch bigint NOT NULL,
            sha256 text NOT NULL,
            settings text NOT NULL,
            saved_utc timestamptz NOT NULL DEFAULT now()
        );
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresCoordinatorLease _lease;
    private readonly Dictionary<string, string> _saved = new(StringComparer.Ordinal);
    private CoordinatorAuditRows.Head? _auditSaved;
    private string? _settingsSaved;
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

    /// <summary>The federation whose state this is.</summary>
    public string Federation => _lease.Federation;

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
    public async Task<int> SaveAsync(IReadOnlyDictionary<string, byte[]> files, IReadOnlyDictionary<string, string> filesOnDisk, string holder, long epoch, CancellationToken cancellationToken) =>
        (await SaveAsync(files, filesOnDisk, [], _ => throw new UnreachableException(), holder, epoch, cancellationToken).ConfigureAwait(false)).Files;

    /// <summary>
    /// As <see cref="SaveAsync(IReadOnlyDictionary{string, byte[]}, IReadOnlyDictionary{string, string}, string, long, CancellationToken)"/>,
    /// and in the same fenced transaction every model version of <paramref name="models"/> that the database does not
    /// hold yet (same version and SHA-256) is sent once, into its own row of <c>securefed_coordinator_models</c>: opened
    /// with <paramref name="openModel"/> (a seekable stream, disposed here) and streamed. The database hashes what it
    /// received; a model whose bytes do not match its recorded size and SHA-256 fails the save (nothing is written).
    /// </summary>
    /// <exception cref="Aggregator.CoordinatorLeaseLostException">The lease is no longer this holder's; nothing was written.</exception>
    /// <exception cref="InvalidDataException">A model's bytes are not its recorded size or SHA-256 (the message names the version); nothing was written.</exception>
    public Task<CoordinatorSaveResult> SaveAsync(
        IReadOnlyDictionary<string, byte[]> files,
        IReadOnlyDictionary<string, string> filesOnDisk,
        IReadOnlyList<ModelRecord> models,
        Func<long, Stream> openModel,
        string holder,
        long epoch,
        CancellationToken cancellationToken) =>
        SaveAsync(files, filesOnDisk, models, openModel, auditLog: null, holder, epoch, cancellationToken);

    /// <summary>
    /// As <see cref="SaveAsync(IReadOnlyDictionary{string, byte[]}, IReadOnlyDictionary{string, string}, IReadOnlyList{ModelRecord}, Func{long, Stream}, string, long, CancellationToken)"/>,
    /// and in the same fenced transaction the complete lines of the audit log at <paramref name="auditLog"/> (the local
    /// <c>audit.jsonl</c>; null: none) that the database does not hold yet are appended as rows (<see cref="SaveAuditAsync"/>);
    /// the audit log saved whole as a file by an earlier version (<c>audit/audit.jsonl</c>) is then dropped.
    /// </summary>
    /// <exception cref="Aggregator.CoordinatorLeaseLostException">The lease is no longer this holder's; nothing was written.</exception>
    /// <exception cref="InvalidDataException">A model's bytes are not its recorded size or SHA-256, or the local audit log does not continue the saved one (the message says which); nothing was written.</exception>
    public Task<CoordinatorSaveResult> SaveAsync(
        IReadOnlyDictionary<string, byte[]> files,
        IReadOnlyDictionary<string, string> filesOnDisk,
        IReadOnlyList<ModelRecord> models,
        Func<long, Stream> openModel,
        string? auditLog,
        string holder,
        long epoch,
        CancellationToken cancellationToken) =>
        SaveAsync(files, filesOnDisk, models, openModel, auditLog, moments: null, holder, epoch, cancellationToken);

    /// <summary>
    /// As <see cref="SaveAsync(IReadOnlyDictionary{string, byte[]}, IReadOnlyDictionary{string, string}, IReadOnlyList{ModelRecord}, Func{long, Stream}, string?, string, long, CancellationToken)"/>,
    /// and in the same fenced transaction the rows of <c>securefed_coordinator_moments</c> made to mirror the round
    /// store's server-optimizer moments (<paramref name="moments"/>; null: left as they are): the moments of its model
    /// version sent once, other versions' rows deleted (<see cref="CoordinatorMomentRows"/>). The round store given must
    /// be saved without them (<see cref="CoordinatorSnapshot.TakeWithoutModelBytes"/>).
    /// </summary>
    /// <exception cref="Aggregator.CoordinatorLeaseLostException">The lease is no longer this holder's; nothing was written.</exception>
    /// <exception cref="InvalidDataException">A model's or the moments' bytes are not as recorded, the database holds other moments for the same model version, or the local audit log does not continue the saved one (the message says which); nothing was written.</exception>
    public Task<CoordinatorSaveResult> SaveAsync(
        IReadOnlyDictionary<string, byte[]> files,
        IReadOnlyDictionary<string, string> filesOnDisk,
        IReadOnlyList<ModelRecord> models,
        Func<long, Stream> openModel,
        string? auditLog,
        CoordinatorMoments? moments,
        string holder,
        long epoch,
        CancellationToken cancellationToken) =>
        SaveAsync(files, filesOnDisk, models, openModel, auditLog, moments, settings: null, holder, epoch, cancellationToken);

    /// <summary>
    /// As <see cref="SaveAsync(IReadOnlyDictionary{string, byte[]}, IReadOnlyDictionary{string, string}, IReadOnlyList{ModelRecord}, Func{long, Stream}, string?, CoordinatorMoments?, string, long, CancellationToken)"/>,
    /// and in the same fenced transaction the coordinator's round-affecting settings (<paramref name="settings"/>; null:
    /// left as they are) into the federation's row of <c>securefed_coordinator_settings</c>, with <paramref name="epoch"/>,
    /// when this instance has not saved these settings yet: what a silo that takes over compares its own settings with
    /// (<see cref="LoadSettingsAsync"/>).
    /// </summary>
    /// <exception cref="Aggregator.CoordinatorLeaseLostException">The lease is no longer this holder's; nothing was written.</exception>
    /// <exception cref="InvalidDataException">A model's or the moments' bytes are not as recorded, the database holds other moments for the same model version, or the local audit log does not continue the saved one (the message says which); nothing was written.</exception>
    public async Task<CoordinatorSaveResult> SaveAsync(
        IReadOnlyDictionary<string, byte[]> files,
        IReadOnlyDictionary<string, string> filesOnDisk,
        IReadOnlyList<ModelRecord> models,
        Func<long, Stream> openModel,
        string? auditLog,
        CoordinatorMoments? moments,
        Aggregator.RoundSettings? settings,
        string holder,
        long epoch,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(filesOnDisk);
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(openModel);
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
            int modelsWritten;
            long modelBytes;
            List<long> modelsPruned;
            (int Rows, long Bytes) momentsWritten = (0, 0);
            (CoordinatorAuditRows.Head Head, int Lines, long Bytes)? audit = null;
            bool settingsWritten = false;
            NpgsqlConnection connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (transaction.ConfigureAwait(false))
                {
                    // Even with nothing changed the fence runs: a commit point of a silo that lost the lease fails. First an
                    // unlocked check (nothing is sent by a silo that already lost it); the locking fence comes last, just
                    // before the commit, so the keeper's renewals are not held back while a large model version is sent.
                    await _lease.FenceAsync(connection, transaction, holder, epoch, cancellationToken, lockRow: false).ConfigureAwait(false);
                    foreach ((string name, byte[]? bytes, string? path, string sha) in changed)
                    {
                        await SaveFileAsync(connection, transaction, name, bytes, path, sha, epoch, cancellationToken).ConfigureAwait(false);
                    }

                    (modelsWritten, modelBytes) = await SaveModelsAsync(connection, transaction, models, openModel, epoch, cancellationToken).ConfigureAwait(false);
                    modelsPruned = await PruneModelRowsAsync(connection, transaction, models, cancellationToken).ConfigureAwait(false);
                    if (moments is not null)
                    {
                        momentsWritten = await CoordinatorMomentRows.SaveAsync(connection, transaction, _lease.Federation, epoch, moments, cancellationToken).ConfigureAwait(false);
                    }

                    if (settings is not null && settings.Sha256 != _settingsSaved)
                    {
                        await SaveSettingsAsync(connection, transaction, settings, epoch, cancellationToken).ConfigureAwait(false);
                        settingsWritten = true;
                    }

                    if (auditLog is not null)
                    {
                        audit = await SaveAuditLinesAsync(connection, transaction, auditLog, epoch, cancellationToken).ConfigureAwait(false);
                        await using var legacy = new NpgsqlCommand("DELETE FROM securefed_coordinator_state WHERE federation = $1 AND name = $2", connection, transaction);
                        legacy.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
                        legacy.Parameters.Add(new NpgsqlParameter { Value = CoordinatorSnapshot.AuditLogName, NpgsqlDbType = NpgsqlDbType.Text });
                        await legacy.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    }

                    await _lease.FenceAsync(connection, transaction, holder, epoch, cancellationToken).ConfigureAwait(false);
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            foreach ((string name, _, _, string sha) in changed)
            {
                _saved[name] = sha;
            }

            if (audit is { } a)
            {
                _auditSaved = a.Head;
                _saved.Remove(CoordinatorSnapshot.AuditLogName);
            }

            if (settingsWritten)
            {
                _settingsSaved = settings!.Sha256;
            }

            return new CoordinatorSaveResult(changed.Count, modelsWritten, modelBytes)
            {
                Settings = settingsWritten,
                AuditLines = audit?.Lines ?? 0,
                AuditBytes = audit?.Bytes ?? 0,
                Moments = momentsWritten.Rows,
                MomentBytes = momentsWritten.Bytes,
                PrunedModels = modelsPruned.Count,
            };
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Appends, in one transaction fenced by <paramref name="holder"/>'s <paramref name="epoch"/>, the complete lines of
    /// the audit log at <paramref name="auditLog"/> (the local <c>audit.jsonl</c>) that the database does not hold yet,
    /// one row each (<see cref="CoordinatorAuditRows"/>). The first save of this instance checks that the local log
    /// begins with every saved line (same running hash); later ones send from where the last ended. Returns how many
    /// lines and bytes were written.
    /// </summary>
    /// <exception cref="Aggregator.CoordinatorLeaseLostException">The lease is no longer this holder's; nothing was written.</exception>
    /// <exception cref="InvalidDataException">The local audit log does not continue the saved one (the message says how); nothing was written.</exception>
    public Task<(int Lines, long Bytes)> SaveAuditAsync(string auditLog, string holder, long epoch, CancellationToken cancellationToken) =>
        SaveAuditAsync(auditLog, new Dictionary<string, byte[]>(StringComparer.Ordinal), holder, epoch, cancellationToken);

    /// <summary>
    /// As <see cref="SaveAuditAsync(string, string, long, CancellationToken)"/>, and in the same fenced transaction the
    /// <paramref name="checkpoints"/> (the files of the checkpoint the caller has just signed, named as in
    /// <see cref="CoordinatorSnapshot"/>; those the database already holds with the same bytes are not sent again), so that
    /// the saved lines are covered by a saved signed checkpoint (docs/cluster.md §6). The checkpoint files are given, so
    /// read, before the lines: the lines saved always cover at least what they sign.
    /// </summary>
    /// <exception cref="Aggregator.CoordinatorLeaseLostException">The lease is no longer this holder's; nothing was written.</exception>
    /// <exception cref="InvalidDataException">The local audit log does not continue the saved one (the message says how); nothing was written.</exception>
    /// <exception cref="ArgumentException">A checkpoint file's name is not one a snapshot may hold.</exception>
    public async Task<(int Lines, long Bytes)> SaveAuditAsync(string auditLog, IReadOnlyDictionary<string, byte[]> checkpoints, string holder, long epoch, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(auditLog);
        ArgumentNullException.ThrowIfNull(checkpoints);
        if (checkpoints.Keys.FirstOrDefault(n => !CoordinatorSnapshot.IsCheckpointName(n)) is string bad)
        {
            throw new ArgumentException($"'{bad}' is not a checkpoint file of the audit log.", nameof(checkpoints));
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
            var changed = checkpoints.Select(f => (Name: f.Key, Bytes: f.Value, Sha: Convert.ToHexStringLower(SHA256.HashData(f.Value))))
                .Where(f => !_saved.TryGetValue(f.Name, out string? sha) || sha != f.Sha).ToList();
            NpgsqlConnection connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (transaction.ConfigureAwait(false))
                {
                    await _lease.FenceAsync(connection, transaction, holder, epoch, cancellationToken, lockRow: false).ConfigureAwait(false);
                    foreach ((string name, byte[] fileBytes, string sha) in changed)
                    {
                        await SaveFileAsync(connection, transaction, name, fileBytes, path: null, sha, epoch, cancellationToken).ConfigureAwait(false);
                    }

                    (CoordinatorAuditRows.Head head, int lines, long bytes) = await SaveAuditLinesAsync(connection, transaction, auditLog, epoch, cancellationToken).ConfigureAwait(false);
                    await _lease.FenceAsync(connection, transaction, holder, epoch, cancellationToken).ConfigureAwait(false);
                    await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                    _auditSaved = head;
                    foreach ((string name, _, string sha) in changed)
                    {
                        _saved[name] = sha;
                    }

                    return (lines, bytes);
                }
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>One file row of <c>securefed_coordinator_state</c>, inserted or replaced: from memory, or a file on disk sent as a stream through Npgsql's write buffer.</summary>
    private async Task SaveFileAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, byte[]? bytes, string? path, string sha, long epoch, CancellationToken cancellationToken)
    {
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

    /// <summary>The number of audit lines saved for the federation (0 when none).</summary>
    public async Task<long> SavedAuditLinesAsync(CancellationToken cancellationToken)
    {
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        NpgsqlConnection connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            return (await CoordinatorAuditRows.ReadHeadAsync(connection, null, _lease.Federation, cancellationToken).ConfigureAwait(false)).Lines;
        }
    }

    /// <summary>
    /// Writes the saved audit log (every row of <c>securefed_coordinator_audit</c>, in order) to a new file at
    /// <paramref name="path"/>, checking that no line is missing and every running hash matches. Returns how many lines
    /// and bytes were written. On failure the file is deleted.
    /// </summary>
    /// <exception cref="InvalidDataException">A saved audit line is missing or corrupt (the message names it).</exception>
    public async Task<(long Lines, long Bytes)> RestoreAuditAsync(string path, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        try
        {
            CoordinatorAuditRows.Head head;
            var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
            await using (stream.ConfigureAwait(false))
            {
                head = await CoordinatorAuditRows.CopyToAsync(_dataSource, _lease.Federation, stream, cancellationToken).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }

            return (head.Lines, head.Offset);
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    /// <summary>The lease epoch that last saved the file <paramref name="name"/> (e.g. the round store), or 0 when it is not saved.</summary>
    public async Task<long> SavedEpochAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using NpgsqlCommand command = _dataSource.CreateCommand("SELECT epoch FROM securefed_coordinator_state WHERE federation = $1 AND name = $2");
        command.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = name, NpgsqlDbType = NpgsqlDbType.Text });
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long epoch ? epoch : 0;
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

    /// <summary>
    /// Writes into <paramref name="store"/> (a round store restored from a snapshot saved without model bytes) the bytes
    /// of every model version it lacks (<see cref="AggregatorStore.ListModelsWithoutBytes"/>), each streamed from its row
    /// of <c>securefed_coordinator_models</c> and checked against the version's size and SHA-256 as it is written.
    /// Returns how many versions and bytes were written.
    /// </summary>
    /// <exception cref="InvalidDataException">A version's row is missing or its bytes do not match (the message names the version).</exception>
    public async Task<(int Models, long Bytes)> RestoreModelsAsync(AggregatorStore store, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        int count = 0;
        long bytes = 0;
        foreach (ModelRecord model in store.ListModelsWithoutBytes())
        {
            await using NpgsqlCommand command = _dataSource.CreateCommand(
                "SELECT bytes FROM securefed_coordinator_models WHERE federation = $1 AND version = $2 AND sha256 = $3");
            command.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
            command.Parameters.Add(new NpgsqlParameter { Value = model.Version, NpgsqlDbType = NpgsqlDbType.Bigint });
            command.Parameters.Add(new NpgsqlParameter { Value = model.Sha256, NpgsqlDbType = NpgsqlDbType.Text });
            command.CommandTimeout = ModelCommandTimeoutSeconds(command.CommandTimeout, model.SizeBytes);

            // Sequential access: the column is read from the connection as it is written into the store, never whole.
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                throw new InvalidDataException(
                    $"model version {model.Version} (SHA-256 {model.Sha256}, {model.SizeBytes} bytes) of federation '{_lease.Federation}' is missing from the cluster's database (table securefed_coordinator_models), though the saved round store holds it");
            }

            Stream column = await reader.GetStreamAsync(0, cancellationToken).ConfigureAwait(false);
            await using (column.ConfigureAwait(false))
            {
                try
                {
                    store.WriteModelBytes(model.Version, column);
                }
                catch (InvalidDataException ex)
                {
                    throw new InvalidDataException(
                        $"model version {model.Version} of federation '{_lease.Federation}' in the cluster's database (table securefed_coordinator_models) is corrupt: {ex.Message}", ex);
                }
            }

            count++;
            bytes += model.SizeBytes;
        }

        return (count, bytes);
    }

    /// <summary>
    /// Writes into <paramref name="store"/> (a round store restored from a snapshot saved without moments, its model
    /// versions already written back) the server-optimizer moments saved with its model version, streamed from
    /// <c>securefed_coordinator_moments</c> and checked (<see cref="CoordinatorMomentRows.RestoreAsync"/>). Returns the
    /// rows and bytes written.
    /// </summary>
    /// <exception cref="InvalidDataException">The moments are missing, do not go with the round store's model version, or are corrupt (the message names both sides).</exception>
    public async Task<(int Rows, long Bytes)> RestoreMomentsAsync(AggregatorStore store, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        return await CoordinatorMomentRows.RestoreAsync(_dataSource, _lease.Federation, store, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The round-affecting settings the federation's last coordinator saved (table <c>securefed_coordinator_settings</c>),
    /// with the lease epoch that saved them; null when none are saved (no coordinator saved yet, or only versions that did
    /// not save settings). Reading needs no lease.
    /// </summary>
    /// <exception cref="InvalidDataException">The saved text does not match its SHA-256 or is not a settings text.</exception>
    public async Task<SavedRoundSettings?> LoadSettingsAsync(CancellationToken cancellationToken)
    {
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using NpgsqlCommand command = _dataSource.CreateCommand("SELECT epoch, sha256, settings FROM securefed_coordinator_settings WHERE federation = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        long epoch = reader.GetInt64(0);
        string sha = reader.GetString(1);
        Aggregator.RoundSettings settings = Aggregator.RoundSettings.Parse(reader.GetString(2));
        if (settings.Sha256 != sha)
        {
            throw new InvalidDataException(
                $"the coordinator settings of federation '{_lease.Federation}' saved by lease epoch {epoch} in the cluster's database (table securefed_coordinator_settings) are corrupt: recorded SHA-256 {sha}, the text hashes to {settings.Sha256}");
        }

        return new SavedRoundSettings(epoch, settings);
    }

    /// <summary>Writes, inside the fenced <paramref name="transaction"/>, the federation's settings row.</summary>
    private async Task SaveSettingsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, Aggregator.RoundSettings settings, long epoch, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            INSERT INTO securefed_coordinator_settings (federation, epoch, sha256, settings) VALUES ($1, $2, $3, $4)
            ON CONFLICT (federation) DO UPDATE SET epoch = EXCLUDED.epoch, sha256 = EXCLUDED.sha256, settings = EXCLUDED.settings, saved_utc = now()
            """,
            connection,
            transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = epoch, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = settings.Sha256, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = settings.Canonical, NpgsqlDbType = NpgsqlDbType.Text });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Appends, inside the fenced <paramref name="transaction"/>, the local audit lines the database lacks.</summary>
    private async Task<(CoordinatorAuditRows.Head Head, int Lines, long Bytes)> SaveAuditLinesAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, string auditLog, long epoch, CancellationToken cancellationToken)
    {
        CoordinatorAuditRows.Head stored = await CoordinatorAuditRows.ReadHeadAsync(connection, transaction, _lease.Federation, cancellationToken).ConfigureAwait(false);
        if (_auditSaved != stored)
        {
            // This instance's first save (or the rows changed under it): the local log must begin with every saved line.
            CoordinatorAuditRows.Head local = CoordinatorAuditRows.LocalPrefix(auditLog, stored.Lines);
            if (local != stored)
            {
                throw new InvalidDataException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"the first {stored.Lines} lines of the local audit log {auditLog} are not the {stored.Lines} audit lines of federation '{_lease.Federation}' in the cluster's database (running SHA-256 {local.Chain}, saved {stored.Chain}): the local log forked from the saved one; nothing was saved"));
            }
        }

        List<CoordinatorAuditRows.Row> rows = CoordinatorAuditRows.ReadNew(auditLog, stored);
        if (rows.Count == 0)
        {
            return (stored, 0, 0);
        }

        await CoordinatorAuditRows.InsertAsync(connection, transaction, _lease.Federation, epoch, rows, cancellationToken).ConfigureAwait(false);
        CoordinatorAuditRows.Row last = rows[^1];
        long bytes = last.Offset + last.Bytes.Length - stored.Offset;
        return (new CoordinatorAuditRows.Head(last.Line, last.Offset + last.Bytes.Length, Convert.ToHexStringLower(last.Chain)), rows.Count, bytes);
    }

    /// <summary>Sends, inside the fenced <paramref name="transaction"/>, each model version the database lacks.</summary>
    private async Task<(int Models, long Bytes)> SaveModelsAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<ModelRecord> models, Func<long, Stream> openModel, long epoch, CancellationToken cancellationToken)
    {
        if (models.Count == 0)
        {
            return (0, 0);
        }

        var stored = new HashSet<(long, string)>();
        await using (var query = new NpgsqlCommand("SELECT version, sha256 FROM securefed_coordinator_models WHERE federation = $1", connection, transaction))
        {
            query.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
            await using NpgsqlDataReader reader = await query.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                stored.Add((reader.GetInt64(0), reader.GetString(1)));
            }
        }

        int count = 0;
        long bytes = 0;
        foreach (ModelRecord model in models.Where(m => !stored.Contains((m.Version, m.Sha256))))
        {
            Stream stream = openModel(model.Version);
            await using (stream.ConfigureAwait(false))
            {
                if (stream.Length - stream.Position != model.SizeBytes)
                {
                    throw new InvalidDataException(
                        $"model version {model.Version} of the coordinator's round store holds {stream.Length - stream.Position} bytes, its record says {model.SizeBytes}; nothing was saved");
                }

                // The database hashes what it received (the stream goes through Npgsql's write buffer, never whole).
                await using var insert = new NpgsqlCommand(
                    """
                    INSERT INTO securefed_coordinator_models (federation, version, sha256, size_bytes, epoch, bytes) VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (federation, version, sha256) DO NOTHING
                    RETURNING encode(sha256(bytes), 'hex')
                    """,
                    connection,
                    transaction);
                insert.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
                insert.Parameters.Add(new NpgsqlParameter { Value = model.Version, NpgsqlDbType = NpgsqlDbType.Bigint });
                insert.Parameters.Add(new NpgsqlParameter { Value = model.Sha256, NpgsqlDbType = NpgsqlDbType.Text });
                insert.Parameters.Add(new NpgsqlParameter { Value = model.SizeBytes, NpgsqlDbType = NpgsqlDbType.Bigint });
                insert.Parameters.Add(new NpgsqlParameter { Value = epoch, NpgsqlDbType = NpgsqlDbType.Bigint });
                insert.Parameters.Add(new NpgsqlParameter { Value = stream, NpgsqlDbType = NpgsqlDbType.Bytea });
                insert.CommandTimeout = ModelCommandTimeoutSeconds(insert.CommandTimeout, model.SizeBytes);
                object? received = await insert.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
                if (received is string actual && actual != model.Sha256)
                {
                    throw new InvalidDataException(
                        $"model version {model.Version} of the coordinator's round store hashes to SHA-256 {actual}, its record says {model.Sha256} (the local copy is corrupt); nothing was saved");
                }

                if (received is not null)
                {
                    count++;
                    bytes += model.SizeBytes;
                }
            }
        }

        return (count, bytes);
    }

    /// <summary>
    /// Deletes, inside the fenced <paramref name="transaction"/>, the model rows of the federation whose version and
    /// SHA-256 are not among <paramref name="models"/> (the round store saved in the same transaction): the versions the
    /// round store pruned (<c>SecureFed:KeepModelVersions</c>). Nothing is deleted when <paramref name="models"/> is empty
    /// (a round store saved whole, with its model bytes inside). Returns the deleted rows' versions, oldest first.
    /// </summary>
    private async Task<List<long>> PruneModelRowsAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<ModelRecord> models, CancellationToken cancellationToken)
    {
        var pruned = new List<long>();
        if (models.Count == 0)
        {
            return pruned;
        }

        await using var delete = new NpgsqlCommand(
            """
            DELETE FROM securefed_coordinator_models m
            WHERE m.federation = $1
              AND NOT EXISTS (SELECT 1 FROM unnest($2::bigint[], $3::text[]) AS k(version, sha256) WHERE k.version = m.version AND k.sha256 = m.sha256)
            RETURNING m.version
            """,
            connection,
            transaction);
        delete.Parameters.Add(new NpgsqlParameter { Value = _lease.Federation, NpgsqlDbType = NpgsqlDbType.Text });
        delete.Parameters.Add(new NpgsqlParameter { Value = models.Select(m => m.Version).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
        delete.Parameters.Add(new NpgsqlParameter { Value = models.Select(m => m.Sha256).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        await using NpgsqlDataReader reader = await delete.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            pruned.Add(reader.GetInt64(0));
        }

        pruned.Sort();
        return pruned;
    }

    private async Task EnsureSchemaAsync(CancellationToken cancellationToken)
    {
        if (_schemaReady)
        {
            return;
        }

        await _lease.EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await PostgresClusteringSchema.CreateUnderLockAsync(_dataSource, Schema + CoordinatorAuditRows.Schema + CoordinatorMomentRows.Schema, cancellationToken).ConfigureAwait(false);

        _schemaReady = true;
    }

    /// <summary>
    /// The command timeout (seconds) of a statement that sends one model version or moment, or reads a model version back, of <paramref name="sizeBytes"/>
    /// bytes: the connection's (<paramref name="configured"/>, Npgsql's 30 s unless the connection string's
    /// <c>Command Timeout</c> says otherwise; 0 = none, kept) or 60 s plus one second per MiB, whichever is longer. With
    /// the 30 s default the <c>INSERT</c> of a 440 MB version failed on a loaded machine (docs/benchmarks.md); at one MiB a
    /// second it now has 479 s.
    /// </summary>
    internal static int ModelCommandTimeoutSeconds(int configured, long sizeBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(configured);
        ArgumentOutOfRangeException.ThrowIfNegative(sizeBytes);
        if (configured == 0)
        {
            return 0;
        }

        long scaled = 60 + (sizeBytes >> 20);
        return (int)Math.Min(int.MaxValue, Math.Max(configured, scaled));
    }
}
