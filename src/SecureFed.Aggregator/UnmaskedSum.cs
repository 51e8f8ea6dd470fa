using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>A run of consecutive words of the unmasked sum, starting at word <paramref name="offset"/>.</summary>
public delegate void SumPieceHandler(int offset, ReadOnlySpan<uint> words);

/// <summary>
/// The unmasked sum Σ x_u mod 2^b of a round as <see cref="RoundCoordinator"/> consumes it: its tail (the weight slot and
/// any evaluation slots) first, then all its words once, in order, a piece at a time. In the single process it is the
/// <see cref="AggregationResult.Sum"/> array (<see cref="Whole"/>); on the aggregator cluster the pieces are the slice
/// grains' unmasked slices, read one after the other, so the coordinator never holds the whole sum (docs/cluster.md §7).
/// It is the same sum either way: what the aggregator learns does not change.
/// </summary>
public abstract class UnmaskedSum
{
    /// <summary>The sum's length m (words).</summary>
    public abstract int Length { get; }

    /// <summary>
    /// True when the whole sum's SHA-256 must be computed while it is read and handed to <see cref="RecordAsync"/> (the
    /// cluster records it in its ledger); false for the single process, which does not record it.
    /// </summary>
    public virtual bool RecordsDigest => false;

    /// <summary>Words [<paramref name="offset"/>, <see cref="Length"/>) of the sum (a few words: the weight and evaluation slots).</summary>
    public abstract Task<uint[]> TailAsync(int offset, CancellationToken cancellationToken);

    /// <summary>
    /// Calls <paramref name="consume"/> with consecutive runs of the sum that cover it exactly once, in order from word 0;
    /// a run's memory is valid only during the call.
    /// </summary>
    public abstract Task ReadInOrderAsync(SumPieceHandler consume, CancellationToken cancellationToken);

    /// <summary>Told the SHA-256 (lower-case hex, little-endian u32 words) of the whole sum once it was read (<see cref="RecordsDigest"/>).</summary>
    public virtual Task RecordAsync(string sumSha256, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The sum held whole in memory (the single process).</summary>
    public static UnmaskedSum Whole(uint[] sum) => new WholeSum(sum);

    private sealed class WholeSum(uint[] sum) : UnmaskedSum
    {
        private readonly uint[] _sum = sum ?? throw new ArgumentNullException(nameof(sum));

        public override int Length => _sum.Length;

        public override Task<uint[]> TailAsync(int offset, CancellationToken cancellationToken) => Task.FromResult(_sum[offset..]);

        public override Task ReadInOrderAsync(SumPieceHandler consume, CancellationToken cancellationToken)
        {
            ArgumentNullException.ThrowIfNull(consume);
            consume(0, _sum);
            return Task.CompletedTask;
        }
    }
}

/// <summary>
/// The end of a round whose server hands the unmasked sum over a piece at a time (<see cref="ISlicedRoundServer"/>):
/// who is in the sum, the shares left out, and the sum itself.
/// </summary>
/// <param name="Contributors">U3: indices whose inputs are in the sum.</param>
/// <param name="RejectedShares">Revealed shares that were wrong and were not used.</param>
/// <param name="Sum">The unmasked sum.</param>
public sealed record SlicedRoundResult(IReadOnlyList<int> Contributors, IReadOnlyList<RejectedShare> RejectedShares, UnmaskedSum Sum);

/// <summary>
/// A round server whose unmasked sum can be read a slice at a time (the aggregator cluster): <see cref="RoundCoordinator"/>
/// then calls <see cref="FinishBySliceAsync"/> instead of <see cref="IRoundServer.FinishAsync"/> and fuses the model slice
/// by slice (<see cref="SumFusion"/>), never holding the whole sum.
/// </summary>
public interface ISlicedRoundServer
{
    /// <summary>As <see cref="IRoundServer.FinishAsync"/>, with the sum left where it is, to be read by <see cref="UnmaskedSum.ReadInOrderAsync"/>.</summary>
    Task<SlicedRoundResult> FinishBySliceAsync(CancellationToken cancellationToken);
}
