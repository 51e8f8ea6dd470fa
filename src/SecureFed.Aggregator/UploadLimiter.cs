using System.Collections.Concurrent;

namespace SecureFed.Aggregator;

/// <summary>
/// Bounds how many masked-input vectors are buffered at once, so peak memory is O(limit · m); and how many of them one site
/// may take: a site holds at most one slot at a time, its other uploads (concurrent slices, a retry) wait on the site's own
/// gate, not on the slots, and at most a given number of them may wait (docs/PROTOCOL.md §5, "Upload rules").
/// </summary>
internal sealed class UploadLimiter(int limit) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(limit, limit);
    private readonly ConcurrentDictionary<string, SiteGate> _sites = new(StringComparer.Ordinal);
    private int _inUse;
    private int _peak;

    /// <summary>Configured number of upload slots.</summary>
    public int Limit { get; } = limit;

    /// <summary>Uploads buffered right now.</summary>
    public int InUse => Volatile.Read(ref _inUse);

    /// <summary>Most uploads ever buffered at the same time (for load measurements).</summary>
    public int PeakInUse => Volatile.Read(ref _peak);

    /// <summary><paramref name="site"/>'s uploads here right now: reading (at most one) and waiting.</summary>
    public int UploadsOf(string site) => _sites.TryGetValue(site, out SiteGate? gate) ? Volatile.Read(ref gate.Uploads) : 0;

    /// <summary>
    /// Waits for <paramref name="site"/>'s turn (one upload per site at a time), then for one of the slots. Returns null at
    /// once, without waiting, when the site already has one upload reading and <paramref name="maxWaiting"/> waiting here.
    /// </summary>
    public async Task<Lease?> AcquireAsync(string site, int maxWaiting, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(site);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWaiting, 0);
        SiteGate gate = _sites.GetOrAdd(site, _ => new SiteGate());
        if (Interlocked.Increment(ref gate.Uploads) > maxWaiting + 1)
        {
            Interlocked.Decrement(ref gate.Uploads);
            return null;
        }

        bool turn = false;
        try
        {
            await gate.Turn.WaitAsync(cancellationToken).ConfigureAwait(false);
            turn = true;
            await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (turn)
            {
                gate.Turn.Release();
            }

            Interlocked.Decrement(ref gate.Uploads);
            throw;
        }

        int now = Interlocked.Increment(ref _inUse);
        int peak;
        while (now > (peak = Volatile.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, peak) != peak)
        {
        }

        return new Lease(this, gate);
    }

    public void Dispose()
    {
        _slots.Dispose();
        foreach (SiteGate gate in _sites.Values)
        {
            gate.Turn.Dispose();
        }
    }

    private void Release(SiteGate gate)
    {
        Interlocked.Decrement(ref _inUse);
        _slots.Release();
        gate.Turn.Release();
        Interlocked.Decrement(ref gate.Uploads);
    }

    /// <summary>One site's gate: its turn to take a slot, and its uploads here (reading and waiting).</summary>
    internal sealed class SiteGate
    {
        public readonly SemaphoreSlim Turn = new(1, 1);
        public int Uploads;
    }

    /// <summary>A slot and the site's turn, both given back on <see cref="Dispose"/> (once).</summary>
    internal sealed class Lease : IDisposable
    {
        private readonly UploadLimiter _owner;
        private readonly SiteGate _gate;
        private int _released;

        internal Lease(UploadLimiter owner, SiteGate gate)
        {
            _owner = owner;
            _gate = gate;
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                _owner.Release(_gate);
            }
        }
    }
}
