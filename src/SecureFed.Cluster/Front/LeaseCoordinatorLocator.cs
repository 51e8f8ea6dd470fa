using SecureFed.Cluster.Lease;

namespace SecureFed.Cluster.Front;

/// <summary>
/// Reads the coordinator lease row from the cluster's PostgreSQL database (<see cref="PostgresCoordinatorLease.ReadAsync"/>)
/// and keeps it for <see cref="CacheFor"/>, so agents' control calls do not each cost a query; a coordinator that cannot
/// be reached is <see cref="Forget">forgotten</see> at once, so a takeover is seen on the next call.
/// </summary>
public sealed class LeaseCoordinatorLocator : ICoordinatorLocator
{
    private readonly PostgresCoordinatorLease _lease;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Cached? _cached;

    /// <summary>A locator over <paramref name="lease"/>.</summary>
    public LeaseCoordinatorLocator(PostgresCoordinatorLease lease, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentNullException.ThrowIfNull(time);
        _lease = lease;
        _time = time;
    }

    /// <summary>How long a read lease row is reused.</summary>
    /// <value>The default value is 2 seconds.</value>
    public TimeSpan CacheFor { get; init; } = TimeSpan.FromSeconds(2);

    /// <inheritdoc />
    public async Task<CoordinatorLeaseRecord?> LocateAsync(CancellationToken cancellationToken)
    {
        Cached? cached = Volatile.Read(ref _cached);
        if (cached is not null && _time.GetElapsedTime(cached.ReadAt) < CacheFor)
        {
            return cached.Record;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            cached = Volatile.Read(ref _cached);
            if (cached is not null && _time.GetElapsedTime(cached.ReadAt) < CacheFor)
            {
                return cached.Record;
            }

            long readAt = _time.GetTimestamp();
            (CoordinatorLeaseRecord? record, _) = await _lease.ReadAsync(cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _cached, new Cached(record, readAt));
            return record;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public void Forget(CoordinatorLeaseRecord stale)
    {
        ArgumentNullException.ThrowIfNull(stale);
        Cached? cached = Volatile.Read(ref _cached);
        if (cached?.Record is CoordinatorLeaseRecord record && record.Epoch == stale.Epoch && record.Holder == stale.Holder)
        {
            Interlocked.CompareExchange(ref _cached, null, cached);
        }
    }

    private sealed record Cached(CoordinatorLeaseRecord? Record, long ReadAt);
}
