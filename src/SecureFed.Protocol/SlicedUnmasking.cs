using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// The end of a round whose masked inputs were summed in slices (<see cref="ServerRound.ForSlicedInput"/>): the masks
/// to remove, rebuilt and verified exactly as <see cref="ServerRound.Finish"/> does, and who is in the sum. Each holder of
/// a slice of the masked sum applies <see cref="ApplyTo"/> to it; the slices put together equal
/// <see cref="ServerRound.Finish"/>'s sum bit for bit. The seeds are secrets of the round: <see cref="Dispose"/> wipes them.
/// </summary>
public sealed class SlicedUnmasking : IDisposable
{
    internal SlicedUnmasking(RoundParameters parameters, IReadOnlyList<MaskRemoval> removals, IReadOnlyList<int> contributors,
        IReadOnlyList<int> droppedBeforeShares, IReadOnlyList<int> droppedBeforeInput, IReadOnlyList<int> droppedAfterInput,
        IReadOnlyList<RejectedShare> rejectedShares)
    {
        VectorLength = parameters.VectorLength;
        BitWidth = parameters.BitWidth;
        Removals = removals;
        Contributors = contributors;
        DroppedBeforeShares = droppedBeforeShares;
        DroppedBeforeInput = droppedBeforeInput;
        DroppedAfterInput = droppedAfterInput;
        RejectedShares = rejectedShares;
    }

    /// <summary>m, the length of the whole sum.</summary>
    public int VectorLength { get; }

    /// <summary>b.</summary>
    public int BitWidth { get; }

    /// <summary>The masks to remove: one self mask per survivor, one pairwise mask per (dropped site, surviving neighbour).</summary>
    public IReadOnlyList<MaskRemoval> Removals { get; }

    /// <inheritdoc cref="AggregationResult.Contributors"/>
    public IReadOnlyList<int> Contributors { get; }

    /// <inheritdoc cref="AggregationResult.DroppedBeforeShares"/>
    public IReadOnlyList<int> DroppedBeforeShares { get; }

    /// <inheritdoc cref="AggregationResult.DroppedBeforeInput"/>
    public IReadOnlyList<int> DroppedBeforeInput { get; }

    /// <inheritdoc cref="AggregationResult.DroppedAfterInput"/>
    public IReadOnlyList<int> DroppedAfterInput { get; }

    /// <inheritdoc cref="AggregationResult.RejectedShares"/>
    public IReadOnlyList<RejectedShare> RejectedShares { get; }

    /// <summary>
    /// Removes every mask from words [offset, offset + slice.Length) of the masked sum (mod 2^b), seeking each PRG stream
    /// to the slice instead of expanding it whole.
    /// </summary>
    public void ApplyTo(Span<uint> slice, int offset)
    {
        foreach (MaskRemoval removal in Removals)
        {
            if (removal.Add)
            {
                MaskPrgWindow.AddTo(removal.Seed, removal.Domain, BitWidth, VectorLength, offset, slice);
            }
            else
            {
                MaskPrgWindow.SubtractFrom(removal.Seed, removal.Domain, BitWidth, VectorLength, offset, slice);
            }
        }
    }

    /// <summary>The round's result once the unmasked slices are put together into <paramref name="sum"/> (m words).</summary>
    public AggregationResult ToResult(uint[] sum)
    {
        ArgumentNullException.ThrowIfNull(sum);
        if (sum.Length != VectorLength)
        {
            throw new ArgumentException($"The sum has {sum.Length} words; the round's length is {VectorLength}.", nameof(sum));
        }

        return new AggregationResult(sum, Contributors, DroppedBeforeShares, DroppedBeforeInput, DroppedAfterInput, RejectedShares);
    }

    /// <summary>Wipes the seeds.</summary>
    public void Dispose()
    {
        foreach (MaskRemoval removal in Removals)
        {
            CryptographicOperations.ZeroMemory(removal.Seed);
        }
    }
}
