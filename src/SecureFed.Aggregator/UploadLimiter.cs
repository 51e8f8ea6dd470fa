namespace SecureFed.Aggregator;

/// <summary>Bounds how many masked-input vectors are buffered at once, so peak memory is O(limit · m).</summary>
internal sealed class UploadLimiter(int limit) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(limit, limit);

    public async Task<Lease> AcquireAsync(CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new Lease(_slots);
    }

    public void Dispose() => _slots.Dispose();

    internal readonly struct Lease(SemaphoreSlim slots) : IDisposable
    {
        public void Dispose() => slots.Release();
    }
}
