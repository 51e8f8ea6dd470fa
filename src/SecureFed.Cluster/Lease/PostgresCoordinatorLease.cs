using Npgsql;
using NpgsqlTypes;
using SecureFed.Aggregator;
using SecureFed.Cluster.Membership;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The coordinator lease of one federation in the cluster's PostgreSQL database: one row per federation in table
/// <c>securefed_coordinator_lease</c> (holder, epoch, expiry; created if missing under the schema advisory lock, like
/// the membership tables; the holder's agent endpoint is a column added to older tables). Acquire, renew and release are one atomic statement each, timed by the database's clock;
/// <see cref="FenceAsync"/> checks, inside a writer's transaction, that the writer still holds its epoch, and keeps the
/// row share-locked until that transaction ends so no acquisition can slip in between the check and the commit.
/// The rules are <see cref="LeaseRules"/>'.
/// </summary>
public sealed class PostgresCoordinatorLease
{
    /// <summary>The schema, idempotent.</summary>
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS securefed_coordinator_lease (
            federation text PRIMARY KEY,
            holder text NOT NULL,
            epoch bigint NOT NULL CHECK (epoch > 0),
            expires_utc timestamptz NOT NULL,
            acquired_utc timestamptz NOT NULL,
            renewed_utc timestamptz NOT NULL,
            agent_endpoint text NOT NULL DEFAULT ''
        );
        ALTER TABLE securefed_coordinator_lease ADD COLUMN IF NOT EXISTS agent_endpoint text NOT NULL DEFAULT '';
        """;

    // Takes the lease only when it has expired (or no row exists yet), with the next epoch. Two silos acquiring at once:
    // the second's ON CONFLICT waits for the first's row lock, then re-checks the WHERE against the new row and returns
    // nothing.
    private const string AcquireSql = """
        INSERT INTO securefed_coordinator_lease AS l (federation, holder, epoch, expires_utc, acquired_utc, renewed_utc, agent_endpoint)
        VALUES ($1, $2, 1, clock_timestamp() + $3, clock_timestamp(), clock_timestamp(), $4)
        ON CONFLICT (federation) DO UPDATE
            SET holder = EXCLUDED.holder, epoch = l.epoch + 1, expires_utc = clock_timestamp() + $3,
                acquired_utc = clock_timestamp(), renewed_utc = clock_timestamp(), agent_endpoint = EXCLUDED.agent_endpoint
            WHERE l.expires_utc <= clock_timestamp()
        RETURNING epoch
        """;

    private const string RenewSql = """
        UPDATE securefed_coordinator_lease SET expires_utc = clock_timestamp() + $4, renewed_utc = clock_timestamp()
        WHERE federation = $1 AND holder = $2 AND epoch = $3 AND expires_utc > clock_timestamp()
        """;

    private const string ReleaseSql = """
        UPDATE securefed_coordinator_lease SET expires_utc = clock_timestamp()
        WHERE federation = $1 AND holder = $2 AND epoch = $3 AND expires_utc > clock_timestamp()
        """;

    private const string FenceSql = """
        SELECT epoch FROM securefed_coordinator_lease
        WHERE federation = $1 AND holder = $2 AND epoch = $3 AND expires_utc > clock_timestamp()
        FOR SHARE
        """;

    private const string CheckSql = """
        SELECT epoch FROM securefed_coordinator_lease
        WHERE federation = $1 AND holder = $2 AND epoch = $3 AND expires_utc > clock_timestamp()
        """;

    private const string ReadSql = "SELECT holder, epoch, expires_utc, clock_timestamp(), agent_endpoint FROM securefed_coordinator_lease WHERE federation = $1";

    private readonly NpgsqlDataSource _dataSource;
    private readonly SemaphoreSlim _schemaGate = new(1, 1);
    private volatile bool _schemaReady;

    /// <summary>The lease of <paramref name="federation"/> in the database of <paramref name="dataSource"/>.</summary>
    public PostgresCoordinatorLease(NpgsqlDataSource dataSource, string federation)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentException.ThrowIfNullOrWhiteSpace(federation);
        _dataSource = dataSource;
        Federation = federation;
    }

    /// <summary>The federation whose lease this is.</summary>
    public string Federation { get; }

    /// <summary>
    /// Takes the lease for <paramref name="holder"/> if nobody holds an unexpired one; returns the new epoch, or null
    /// when another silo (or this one, under an older epoch) still holds it.
    /// </summary>
    public Task<long?> TryAcquireAsync(string holder, TimeSpan duration, CancellationToken cancellationToken)
        => TryAcquireAsync(holder, duration, "", cancellationToken);

    /// <summary>
    /// Takes the lease for <paramref name="holder"/> as <see cref="TryAcquireAsync(string, TimeSpan, CancellationToken)"/>
    /// does, recording <paramref name="agentEndpoint"/> (the https:// URL where the holder serves agents; empty for
    /// none) in the same statement, so the other silos forward agents' control calls there (docs/cluster.md §6).
    /// </summary>
    public async Task<long?> TryAcquireAsync(string holder, TimeSpan duration, string agentEndpoint, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        ArgumentNullException.ThrowIfNull(agentEndpoint);
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using NpgsqlCommand command = _dataSource.CreateCommand(AcquireSql);
        AddText(command, Federation);
        AddText(command, holder);
        command.Parameters.Add(new NpgsqlParameter { Value = duration, NpgsqlDbType = NpgsqlDbType.Interval });
        AddText(command, agentEndpoint);
        object? epoch = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return epoch is long e ? e : null;
    }

    /// <summary>
    /// Extends the lease of <paramref name="holder"/> at <paramref name="epoch"/> by <paramref name="duration"/> from
    /// now; false when it is no longer held (expired, or taken by another epoch): the holder must stop.
    /// </summary>
    public async Task<bool> RenewAsync(string holder, long epoch, TimeSpan duration, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using NpgsqlCommand command = _dataSource.CreateCommand(RenewSql);
        AddKey(command, holder, epoch);
        command.Parameters.Add(new NpgsqlParameter { Value = duration, NpgsqlDbType = NpgsqlDbType.Interval });
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <summary>Ends the lease of <paramref name="holder"/> at <paramref name="epoch"/> now, so another silo may take it at once; false when it was not held.</summary>
    public async Task<bool> ReleaseAsync(string holder, long epoch, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using NpgsqlCommand command = _dataSource.CreateCommand(ReleaseSql);
        AddKey(command, holder, epoch);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <summary>The lease's row and the database's clock, or a null row when no silo ever took it.</summary>
    public async Task<(CoordinatorLeaseRecord? Lease, DateTimeOffset DatabaseNow)> ReadAsync(CancellationToken cancellationToken)
    {
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        NpgsqlConnection connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            (CoordinatorLeaseRecord? lease, DateTimeOffset? now) = await ReadAsync(connection, null, cancellationToken).ConfigureAwait(false);
            if (now is null)
            {
                await using var clock = new NpgsqlCommand("SELECT clock_timestamp()", connection);
                now = new DateTimeOffset((DateTime)(await clock.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!, TimeSpan.Zero);
            }

            return (lease, now.Value);
        }
    }

    /// <summary>
    /// The fence of a write: inside <paramref name="transaction"/>, checks that <paramref name="holder"/> still holds
    /// the unexpired lease at <paramref name="epoch"/> and, with <paramref name="lockRow"/>, share-locks the row until the
    /// transaction ends (a concurrent acquisition waits for the commit, so the write lands before the next epoch begins).
    /// The lock also holds back the holder's own renewals (an <c>UPDATE</c> of the row), so a long write takes it last:
    /// an unlocked check first (fail fast, before sending anything), the write, then the locking fence just before the
    /// commit. A takeover between the two makes the locking fence fail and the write is rolled back; one after it waits
    /// for the commit.
    /// </summary>
    /// <param name="lockRow">True (the fence proper): share-lock the row until the transaction ends; false: only check.</param>
    /// <exception cref="CoordinatorLeaseLostException">The writer no longer holds the lease; the message says why (<see cref="LeaseRules.Fence"/>). Roll back.</exception>
    public async Task FenceAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string holder, long epoch, CancellationToken cancellationToken, bool lockRow = true)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        await EnsureSchemaAsync(cancellationToken).ConfigureAwait(false);
        await using (var command = new NpgsqlCommand(lockRow ? FenceSql : CheckSql, connection, transaction))
        {
            AddKey(command, holder, epoch);
            if (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long)
            {
                return;
            }
        }

        (CoordinatorLeaseRecord? lease, DateTimeOffset? now) = await ReadAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
        string reason = LeaseRules.Fence(lease, holder, epoch, now ?? DateTimeOffset.MaxValue)
            ?? $"the coordinator lease of epoch {epoch} ended while this write was checked";
        throw new CoordinatorLeaseLostException($"write refused for federation '{Federation}': {reason}");
    }

    /// <summary>Creates the lease table if the database lacks it (once per instance; silos starting together queue on the schema lock).</summary>
    public async Task EnsureSchemaAsync(CancellationToken cancellationToken)
    {
        if (_schemaReady)
        {
            return;
        }

        await _schemaGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_schemaReady)
            {
                await PostgresClusteringSchema.CreateUnderLockAsync(_dataSource, Schema, cancellationToken).ConfigureAwait(false);

                _schemaReady = true;
            }
        }
        finally
        {
            _schemaGate.Release();
        }
    }

    private async Task<(CoordinatorLeaseRecord? Lease, DateTimeOffset? DatabaseNow)> ReadAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(ReadSql, connection, transaction);
        AddText(command, Federation);
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return (null, null);
        }

        return (new CoordinatorLeaseRecord(Federation, reader.GetString(0), reader.GetInt64(1), reader.GetFieldValue<DateTimeOffset>(2), reader.GetString(4)),
            reader.GetFieldValue<DateTimeOffset>(3));
    }

    private void AddKey(NpgsqlCommand command, string holder, long epoch)
    {
        AddText(command, Federation);
        AddText(command, holder);
        command.Parameters.Add(new NpgsqlParameter { Value = epoch, NpgsqlDbType = NpgsqlDbType.Bigint });
    }

    private static void AddText(NpgsqlCommand command, string value)
        => command.Parameters.Add(new NpgsqlParameter { Value = value, NpgsqlDbType = NpgsqlDbType.Text });
}
