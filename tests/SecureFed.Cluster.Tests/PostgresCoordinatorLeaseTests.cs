using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Cluster.Lease;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The coordinator lease's SQL on a real PostgreSQL (a throw-away server per class): acquire, renew, release, expiry,
/// epochs, fencing of writes, concurrent acquisitions, and the keeper that renews it and reports its loss.
/// </summary>
public sealed class PostgresCoordinatorLeaseTests : IClassFixture<PostgresServer>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);
    private readonly PostgresServer _postgres;

    public PostgresCoordinatorLeaseTests(PostgresServer postgres)
    {
        _postgres = postgres;
    }

    [SkippableFact]
    public async Task TryAcquire_HeldByAnother_RefusedUntilReleasedThenNextEpoch()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "fed-acquire");

        Assert.Equal(1L, await lease.TryAcquireAsync("silo-a", Long, CancellationToken.None).WaitAsync(Timeout));
        Assert.Null(await lease.TryAcquireAsync("silo-b", Long, CancellationToken.None).WaitAsync(Timeout));
        Assert.Null(await lease.TryAcquireAsync("silo-a", Long, CancellationToken.None).WaitAsync(Timeout)); // no re-entry: one epoch per acquisition
        (CoordinatorLeaseRecord? row, DateTimeOffset now) = await lease.ReadAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal(("silo-a", 1L), (row!.Holder, row.Epoch));
        Assert.True(row.ExpiresUtc > now.AddMinutes(4));

        Assert.False(await lease.ReleaseAsync("silo-b", 1, CancellationToken.None).WaitAsync(Timeout)); // not its lease
        Assert.True(await lease.ReleaseAsync("silo-a", 1, CancellationToken.None).WaitAsync(Timeout));
        Assert.Equal(2L, await lease.TryAcquireAsync("silo-b", Long, CancellationToken.None).WaitAsync(Timeout));
        Assert.False(await lease.RenewAsync("silo-a", 1, Long, CancellationToken.None).WaitAsync(Timeout)); // the old holder is out
        Assert.True(await lease.RenewAsync("silo-b", 2, Long, CancellationToken.None).WaitAsync(Timeout));
        Assert.False(await lease.RenewAsync("silo-b", 1, Long, CancellationToken.None).WaitAsync(Timeout)); // wrong epoch
    }

    [SkippableFact]
    public async Task AgentEndpoint_TableOfAnEarlierVersion_ColumnAddedAndWrittenAtAcquire()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource server = NpgsqlDataSource.Create(_postgres.ConnectionString);
        await ExecuteAsync(server, "CREATE DATABASE lease_earlier_schema");
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(_postgres.ConnectionString) { Database = "lease_earlier_schema" }.ConnectionString);
        // The table and an expired row as the version before the agent endpoint made them.
        await ExecuteAsync(db, """
            CREATE TABLE securefed_coordinator_lease (federation text PRIMARY KEY, holder text NOT NULL, epoch bigint NOT NULL CHECK (epoch > 0),
                expires_utc timestamptz NOT NULL, acquired_utc timestamptz NOT NULL, renewed_utc timestamptz NOT NULL);
            INSERT INTO securefed_coordinator_lease VALUES ('fed-earlier', 'silo-old', 4, clock_timestamp(), clock_timestamp(), clock_timestamp());
            """);
        var lease = new PostgresCoordinatorLease(db, "fed-earlier");

        (CoordinatorLeaseRecord? before, _) = await lease.ReadAsync(CancellationToken.None).WaitAsync(Timeout);
        long? epoch = await lease.TryAcquireAsync("silo-new", Long, "https://127.0.0.1:7443", CancellationToken.None).WaitAsync(Timeout);
        (CoordinatorLeaseRecord? acquired, _) = await lease.ReadAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.True(await lease.ReleaseAsync("silo-new", 5, CancellationToken.None).WaitAsync(Timeout));
        Assert.Equal(6L, await lease.TryAcquireAsync("silo-c", Long, CancellationToken.None).WaitAsync(Timeout));
        (CoordinatorLeaseRecord? next, _) = await lease.ReadAsync(CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(("silo-old", 4L, ""), (before!.Holder, before.Epoch, before.AgentEndpoint)); // the column added, empty
        Assert.Equal(5L, epoch);
        Assert.Equal(("silo-new", 5L, "https://127.0.0.1:7443"), (acquired!.Holder, acquired.Epoch, acquired.AgentEndpoint));
        Assert.Equal(("silo-c", ""), (next!.Holder, next.AgentEndpoint)); // a new holder never inherits its predecessor's endpoint
    }

    [SkippableFact]
    public async Task Renew_AfterExpiry_RefusedAndAnotherSiloTakesTheNextEpoch()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "fed-expiry");
        Assert.Equal(1L, await lease.TryAcquireAsync("silo-a", TimeSpan.FromMilliseconds(200), CancellationToken.None).WaitAsync(Timeout));

        // Wait (by the database's clock) until it has expired; no timing assertion, only the order of events.
        await WaitUntilExpiredAsync(lease);
        Assert.False(await lease.RenewAsync("silo-a", 1, Long, CancellationToken.None).WaitAsync(Timeout)); // an expired lease is never revived
        Assert.Equal(2L, await lease.TryAcquireAsync("silo-b", Long, CancellationToken.None).WaitAsync(Timeout));
        Assert.Null(await lease.TryAcquireAsync("silo-a", Long, CancellationToken.None).WaitAsync(Timeout));
    }

    [SkippableFact]
    public async Task TryAcquire_EightSilosAtOnceOnAFreshDatabaseTable_ExactlyOneWins()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);

        // Eight instances (as eight silos would have), each creating the schema and acquiring at once.
        long?[] epochs = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            new PostgresCoordinatorLease(db, "fed-race").TryAcquireAsync($"silo-{i}", Long, CancellationToken.None))).WaitAsync(Timeout);
        Assert.Equal([1L], epochs.Where(e => e is not null).Select(e => e!.Value));
    }

    [SkippableFact]
    public async Task Fence_HolderWrites_StaleHolderRefusedWithReasonAndNothingWritten()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "fed-fence");
        await ExecuteAsync(db, "CREATE TABLE IF NOT EXISTS fenced_writes (writer text NOT NULL)");
        // A long lease, so that the first fenced write cannot outlast it on a loaded machine; then silo-a lets it lapse
        // (a renewal for 1 ms) and it expires by the database's clock.
        Assert.Equal(1L, await lease.TryAcquireAsync("silo-a", Long, CancellationToken.None).WaitAsync(Timeout));
        await FencedInsertAsync(db, lease, "silo-a", 1);
        Assert.True(await lease.RenewAsync("silo-a", 1, TimeSpan.FromMilliseconds(1), CancellationToken.None).WaitAsync(Timeout));

        await WaitUntilExpiredAsync(lease);
        Assert.Equal(2L, await lease.TryAcquireAsync("silo-b", Long, CancellationToken.None).WaitAsync(Timeout));
        var ex = await Assert.ThrowsAsync<CoordinatorLeaseLostException>(() => FencedInsertAsync(db, lease, "silo-a", 1));
        Assert.Equal("write refused for federation 'fed-fence': the coordinator lease is at epoch 2 (held by silo-b), this writer holds epoch 1", ex.Message);
        await FencedInsertAsync(db, lease, "silo-b", 2);

        Assert.Equal(["silo-a", "silo-b"], await WritersAsync(db));
    }

    [SkippableFact]
    public async Task Fence_WriteInFlight_AcquisitionWaitsForItsCommit()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "fed-inflight");
        Assert.Equal(1L, await lease.TryAcquireAsync("silo-a", Long, CancellationToken.None).WaitAsync(Timeout));

        await using NpgsqlConnection writer = await db.OpenConnectionAsync().AsTask().WaitAsync(Timeout);
        await using NpgsqlTransaction tx = await writer.BeginTransactionAsync().AsTask().WaitAsync(Timeout);
        // Only the fence's one statement has to fit in the 3 s left (the connection is open): short enough to wait out.
        Assert.True(await lease.RenewAsync("silo-a", 1, TimeSpan.FromSeconds(3), CancellationToken.None).WaitAsync(Timeout));
        await lease.FenceAsync(writer, tx, "silo-a", 1, CancellationToken.None).WaitAsync(Timeout); // passes, holds the row

        await WaitUntilExpiredAsync(lease);
        Task<long?> takeover = lease.TryAcquireAsync("silo-b", Long, CancellationToken.None);
        // The acquisition queues behind the fenced write's row lock: it is still waiting when we look at the locks.
        await WaitForLockWaitAsync(db);
        Assert.False(takeover.IsCompleted);
        await tx.CommitAsync().WaitAsync(Timeout);
        Assert.Equal(2L, await takeover.WaitAsync(Timeout));
    }

    [SkippableFact]
    public async Task Fence_UnlockedCheckWhileTheWriteIsSent_RenewalsGoThrough_LockingFenceHoldsThemBack()
    {
        // A commit point of a 440 MB model version takes longer than the lease: the holder's renewals must not wait for
        // it. The unlocked check at the start of the write lets them through; only the locking fence just before the
        // commit holds them back, for as long as the commit itself takes.
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "fed-renew-inflight");
        Assert.Equal(1L, await lease.TryAcquireAsync("silo-a", Long, CancellationToken.None).WaitAsync(Timeout));

        await using NpgsqlConnection writer = await db.OpenConnectionAsync().AsTask().WaitAsync(Timeout);
        await using NpgsqlTransaction tx = await writer.BeginTransactionAsync().AsTask().WaitAsync(Timeout);
        await lease.FenceAsync(writer, tx, "silo-a", 1, CancellationToken.None, lockRow: false).WaitAsync(Timeout);
        Assert.True(await lease.RenewAsync("silo-a", 1, Long, CancellationToken.None).WaitAsync(Timeout)); // not blocked by the write

        await lease.FenceAsync(writer, tx, "silo-a", 1, CancellationToken.None).WaitAsync(Timeout); // the fence proper: holds the row
        Task<bool> renewal = lease.RenewAsync("silo-a", 1, Long, CancellationToken.None);
        await WaitForLockWaitAsync(db);
        Assert.False(renewal.IsCompleted);
        await tx.CommitAsync().WaitAsync(Timeout);
        Assert.True(await renewal.WaitAsync(Timeout));
    }

    [SkippableFact]
    public async Task Fence_TakeoverAfterTheUnlockedCheck_LockingFenceRefuses()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "fed-check-then-lost");
        Assert.Equal(1L, await lease.TryAcquireAsync("silo-a", Long, CancellationToken.None).WaitAsync(Timeout));

        await using (NpgsqlConnection writer = await db.OpenConnectionAsync().AsTask().WaitAsync(Timeout))
        {
            await using NpgsqlTransaction tx = await writer.BeginTransactionAsync().AsTask().WaitAsync(Timeout);
            // Only the check's one statement has to fit in the 3 s left (the connection is open): short enough to wait out.
            Assert.True(await lease.RenewAsync("silo-a", 1, TimeSpan.FromSeconds(3), CancellationToken.None).WaitAsync(Timeout));
            await lease.FenceAsync(writer, tx, "silo-a", 1, CancellationToken.None, lockRow: false).WaitAsync(Timeout);

            // The lease expires while the write is sent, and silo-b takes it at once: the unlocked check held nothing.
            await WaitUntilExpiredAsync(lease);
            Assert.Equal(2L, await lease.TryAcquireAsync("silo-b", Long, CancellationToken.None).WaitAsync(Timeout));

            var ex = await Assert.ThrowsAsync<CoordinatorLeaseLostException>(() => lease.FenceAsync(writer, tx, "silo-a", 1, CancellationToken.None).WaitAsync(Timeout));
            Assert.Contains("fed-check-then-lost", ex.Message, StringComparison.Ordinal);
            await tx.RollbackAsync().WaitAsync(Timeout);
        }
    }

    [SkippableFact]
    public async Task Keeper_RenewsThenRenewalRefused_LostCancelledAndEnsureHeldThrows()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, "fed-keeper");
        // Renewed every 200 ms, but valid 15 s locally: a keeper starved for seconds on a loaded machine still holds it
        // (the loss tested here comes from a refused renewal, never from the lease running out).
        var terms = new LeaseTerms(TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5));
        await using var keeper = new CoordinatorLeaseKeeper(lease, "silo-a", terms, TimeProvider.System, NullLogger.Instance);
        Assert.Throws<CoordinatorLeaseLostException>(keeper.EnsureHeld); // not acquired yet
        Assert.Equal(1L, await keeper.AcquireAsync(CancellationToken.None).WaitAsync(Timeout));
        keeper.EnsureHeld();

        // Renewals happen: the database's expiry moves forward.
        (CoordinatorLeaseRecord? first, _) = await lease.ReadAsync(CancellationToken.None).WaitAsync(Timeout);
        await WaitAsync(async () => (await lease.ReadAsync(CancellationToken.None)).Lease!.ExpiresUtc > first!.ExpiresUtc);
        keeper.EnsureHeld();

        // An operator (or a bug) hands the lease to another silo: the next renewal is refused and the keeper gives up.
        await ExecuteAsync(db, "UPDATE securefed_coordinator_lease SET holder = 'silo-b', epoch = epoch + 1 WHERE federation = 'fed-keeper'");
        await Task.Delay(System.Threading.Timeout.Infinite, keeper.Lost).WaitAsync(Timeout).ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.True(keeper.Lost.IsCancellationRequested);
        var ex = Assert.Throws<CoordinatorLeaseLostException>(keeper.EnsureHeld);
        Assert.Contains("refused to renew epoch 1", ex.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Keeper_DatabaseSilent_LostWhenLocalValidityEndsAndAnotherKeeperTakesOver()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var terms = new LeaseTerms(TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(500));
        await using var a = new CoordinatorLeaseKeeper(new PostgresCoordinatorLease(db, "fed-silent"), "silo-a", terms, TimeProvider.System, NullLogger.Instance);
        Assert.Equal(1L, await a.AcquireAsync(CancellationToken.None).WaitAsync(Timeout));

        // Another session locks the row: a's renewals get no answer (as with a partitioned database).
        await using NpgsqlConnection blocker = await db.OpenConnectionAsync().AsTask().WaitAsync(Timeout);
        await using NpgsqlTransaction tx = await blocker.BeginTransactionAsync().AsTask().WaitAsync(Timeout);
        await using (var command = new NpgsqlCommand("SELECT 1 FROM securefed_coordinator_lease WHERE federation = 'fed-silent' FOR UPDATE", blocker, tx))
        {
            await command.ExecuteNonQueryAsync().WaitAsync(Timeout);
        }

        await Task.Delay(System.Threading.Timeout.Infinite, a.Lost).WaitAsync(Timeout).ContinueWith(_ => { }, TaskScheduler.Default);
        Assert.True(a.Lost.IsCancellationRequested);
        Assert.Throws<CoordinatorLeaseLostException>(a.EnsureHeld);
        await tx.RollbackAsync().WaitAsync(Timeout);

        // b waits for the database's expiry, then takes epoch 2; a never comes back.
        await using var b = new CoordinatorLeaseKeeper(new PostgresCoordinatorLease(db, "fed-silent"), "silo-b", terms, TimeProvider.System, NullLogger.Instance);
        Assert.Equal(2L, await b.AcquireAsync(CancellationToken.None).WaitAsync(Timeout));
        b.EnsureHeld();
        Assert.Throws<CoordinatorLeaseLostException>(a.EnsureHeld);
    }

    [SkippableFact]
    public async Task Keeper_Disposed_ReleasesSoTheNextSiloNeedNotWaitForExpiry()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var terms = new LeaseTerms(TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        var lease = new PostgresCoordinatorLease(db, "fed-release");
        var a = new CoordinatorLeaseKeeper(lease, "silo-a", terms, TimeProvider.System, NullLogger.Instance);
        Assert.Equal(1L, await a.AcquireAsync(CancellationToken.None).WaitAsync(Timeout));
        await using var b = new CoordinatorLeaseKeeper(lease, "silo-b", terms, TimeProvider.System, NullLogger.Instance);
        Task<long> waiting = b.AcquireAsync(CancellationToken.None);
        Assert.False(waiting.IsCompleted);

        await a.DisposeAsync().AsTask().WaitAsync(Timeout);
        Assert.Equal(2L, await waiting.WaitAsync(Timeout)); // a 5-minute lease, taken within the test's timeout
    }

    private static async Task FencedInsertAsync(NpgsqlDataSource db, PostgresCoordinatorLease lease, string holder, long epoch)
    {
        await using NpgsqlConnection connection = await db.OpenConnectionAsync().AsTask().WaitAsync(Timeout);
        await using NpgsqlTransaction tx = await connection.BeginTransactionAsync().AsTask().WaitAsync(Timeout);
        await lease.FenceAsync(connection, tx, holder, epoch, CancellationToken.None).WaitAsync(Timeout);
        await using (var insert = new NpgsqlCommand("INSERT INTO fenced_writes (writer) VALUES ($1)", connection, tx))
        {
            insert.Parameters.Add(new NpgsqlParameter { Value = holder });
            await insert.ExecuteNonQueryAsync().WaitAsync(Timeout);
        }

        await tx.CommitAsync().WaitAsync(Timeout);
    }

    private static async Task<string[]> WritersAsync(NpgsqlDataSource db)
    {
        await using NpgsqlCommand command = db.CreateCommand("SELECT writer FROM fenced_writes ORDER BY writer");
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync().WaitAsync(Timeout);
        var writers = new List<string>();
        while (await reader.ReadAsync())
        {
            writers.Add(reader.GetString(0));
        }

        return [.. writers];
    }

    private static async Task ExecuteAsync(NpgsqlDataSource db, string sql)
    {
        await using NpgsqlCommand command = db.CreateCommand(sql);
        await command.ExecuteNonQueryAsync().WaitAsync(Timeout);
    }

    private static Task WaitUntilExpiredAsync(PostgresCoordinatorLease lease) => WaitAsync(async () =>
    {
        (CoordinatorLeaseRecord? row, DateTimeOffset now) = await lease.ReadAsync(CancellationToken.None);
        return row is not null && row.ExpiresUtc <= now;
    });

    private static Task WaitForLockWaitAsync(NpgsqlDataSource db) => WaitAsync(async () =>
    {
        await using NpgsqlCommand command = db.CreateCommand("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'");
        return (long)(await command.ExecuteScalarAsync())! > 0;
    });

    private static async Task WaitAsync(Func<Task<bool>> condition)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        while (!await condition().WaitAsync(Timeout))
        {
            await Task.Delay(50, timeout.Token);
        }
    }
}
