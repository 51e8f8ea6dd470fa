using SecureFed.Aggregator;

namespace SecureFed.Cluster;

/// <summary>
/// The unmasked sum of a finished cluster round, left in its slice grains (<see cref="ClusterRoundClient.FinishBySliceAsync"/>):
/// the tail is read from the grains that hold it, then the slices one after the other, in order, each in pieces of at
/// most <see cref="PieceWords"/> words (<see cref="Grains.ISliceGrain.WordsAsync"/>), each piece dropped before the next
/// is asked for; a slice grain is told to end once its slice was read (<see cref="Grains.ISliceGrain.EndAsync"/>). The
/// reader thus holds one piece of the sum at a time (and the slice silo sends one piece at a time), never the whole sum
/// or a whole slice, and learns the same sum as a whole gather.
/// </summary>
public sealed class SlicedClusterSum : UnmaskedSum
{
    private readonly ClusterRoundClient _client;
    private readonly SliceLayout _layout;
    private readonly Func<string, CancellationToken, Task>? _record;
    private readonly int _pieceWords;

    /// <summary>
    /// Words read per grain call: 16 Ki words, 64 KiB, below the runtime's large-object threshold (85,000 bytes), so each
    /// piece and its message buffers are short-lived small objects, collected as the reading goes (pieces of 4 MiB were
    /// large objects that piled up as garbage until the round ended: docs/benchmarks.md).
    /// </summary>
    public const int DefaultPieceWords = 1 << 14;

    /// <summary>Pieces asked for ahead of the one being consumed (bounds the memory in flight to a few pieces).</summary>
    public const int Window = 8;

    /// <summary>
    /// The sum of <paramref name="client"/>'s round, cut as <paramref name="layout"/> says; <paramref name="record"/>, if
    /// given, is told the whole sum's SHA-256 once it was read (the ledger entry).
    /// </summary>
    /// <param name="client">The round's client.</param>
    /// <param name="layout">How the sum is cut into slices.</param>
    /// <param name="record">Told the whole sum's SHA-256 once it was read, if given.</param>
    /// <param name="pieceWords">Words read per grain call.</param>
    public SlicedClusterSum(ClusterRoundClient client, SliceLayout layout, Func<string, CancellationToken, Task>? record = null, int pieceWords = DefaultPieceWords)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentOutOfRangeException.ThrowIfLessThan(pieceWords, 1);
        _client = client;
        _layout = layout;
        _record = record;
        _pieceWords = pieceWords;
    }

    /// <summary>Words read per grain call.</summary>
    public int PieceWords => _pieceWords;

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
        var pending = new Queue<(int From, int Count, Task<uint[]> Words)>(Window);
        for (int k = 0; k < _layout.Count; k++)
        {
            Grains.ISliceGrain slice = _client.Slice(k);
            int length = _layout.Length(k);
            int next = 0;
            while (next < length || pending.Count > 0)
            {
                // Keep up to Window pieces of this slice in flight; consume them in order.
                while (next < length && pending.Count < Window)
                {
                    int count = Math.Min(_pieceWords, length - next);
                    pending.Enqueue((next, count, slice.WordsAsync(next, count)));
                    next += count;
                }

                (int from, int expected, Task<uint[]> read) = pending.Dequeue();
                uint[] words = await read.WaitAsync(cancellationToken).ConfigureAwait(false);
                if (words is null || words.Length != expected)
                {
                    throw new ClusterRoundAbortedException($"slice {k} returned {words?.Length ?? 0} unmasked words for its words [{from}, {from + expected})");
                }

                consume(_layout.Offset(k) + from, words);
            }

            await slice.EndAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
