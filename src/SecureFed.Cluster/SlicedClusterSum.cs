using SecureFed.Aggregator;

namespace SecureFed.Cluster;

/// <summary>
/// The unmasked sum of a finished cluster round, left in its slice grains (<see cref="ClusterRoundClient.FinishBySliceAsync"/>):
/// the tail is read from the grains that hold it (<see cref="Grains.ISliceGrain.WordsAsync"/>), then the slices one after
/// the other, in order (<see cref="Grains.ISliceGrain.ResultAsync"/>), each dropped before the next is asked for. The
/// reader thus holds one slice of the sum at a time, never the whole sum, and learns the same sum as a whole gather.
/// </summary>
public sealed class SlicedClusterSum : UnmaskedSum
{
    private readonly ClusterRoundClient _client;
    private readonly SliceLayout _layout;
    private readonly Func<string, CancellationToken, Task>? _record;

    /// <summary>
    /// The sum of <paramref name="client"/>'s round, cut as <paramref name="layout"/> says; <paramref name="record"/>, if
    /// given, is told the whole sum's SHA-256 once it was read (the ledger entry).
    /// </summary>
    public SlicedClusterSum(ClusterRoundClient client, SliceLayout layout, Func<string, CancellationToken, Task>? record = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(layout);
        _client = client;
        _layout = layout;
        _record = record;
    }

    /// <inheritdoc />
    public override bool RecordsDigest => _record is not null;

    /// <inheritdoc />
    public override Task RecordAsync(string sumSha256, CancellationToken cancellationToken)
        => _record is null ? Task.CompletedTask : _record(sumSha256, cancellationToken);

    /// <summary>The layout of the slices.</summary>
    public SliceLayout Layout => _layout;

    /// <inheritdoc />
    public override int Length => _layout.VectorLength;

    /// <inheritdoc />
    public override async Task<uint[]> TailAsync(int offset, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, _layout.VectorLength);
        uint[] tail = new uint[_layout.VectorLength - offset];
        for (int k = offset / _layout.SliceSize; k < _layout.Count && tail.Length > 0; k++)
        {
            int start = Math.Max(offset, _layout.Offset(k));
            int end = _layout.Offset(k) + _layout.Length(k);
            uint[] words = await _client.Slice(k).WordsAsync(start - _layout.Offset(k), end - start).WaitAsync(cancellationToken).ConfigureAwait(false);
            if (words.Length != end - start)
            {
                throw new ClusterRoundAbortedException($"slice {k} returned {words.Length} of the sum's words [{start}, {end})");
            }

            words.CopyTo(tail, start - offset);
        }

        return tail;
    }

    /// <inheritdoc />
    public override async Task ReadInOrderAsync(SumPieceHandler consume, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(consume);
        for (int k = 0; k < _layout.Count; k++)
        {
            Orleans.Concurrency.Immutable<uint[]> slice = await _client.Slice(k).ResultAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            if (slice.Value is null || slice.Value.Length != _layout.Length(k))
            {
                throw new ClusterRoundAbortedException($"slice {k} returned {slice.Value?.Length ?? 0} unmasked words; the slice has {_layout.Length(k)}");
            }

            consume(_layout.Offset(k), slice.Value);
        }
    }
}
