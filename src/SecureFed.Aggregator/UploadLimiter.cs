namespace SecureFed.Aggregator;

/// <summary>Bounds how many masked-input vectors are buffered at once, so peak memory is O(limit · m).</summary>
internal sealed class UploadLimiter(int limit) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(limit, limit);
    private int _inUse;
    private int _peak;

    /// <summary>Configured number of upload slots.</summary>
    public int Limit { get; } = limit;

    /// <summary>Uploads buffered right now.</summary>
    public int InUse => Volatile.Read(ref _inUse);

    /// <summary>Most uploads ever buffered at the same time (for load measurements).</summary>
    public int PeakInUse => Volatile.Read(ref _peak);

    public async Task<Lease> AcquireAsync(CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        int now = Interlocked.Increment(ref _inUse);
        int peak;
        while (now > (peak = Volatile.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, peak) != peak)
        {
        }

        return new Lease(this);
    }

    public void Dispose() => _slots.Dispose();

    private void Release()
    {
        Interlocked.Decrement(ref _inUse);
        _slots.Release();
    }

    internal readonly struct Lease(UploadLimiter owner) : IDisposable
    {
        public void Dispose() => owner.Release();
    }
}
