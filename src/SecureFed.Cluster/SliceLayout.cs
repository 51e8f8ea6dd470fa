namespace SecureFed.Cluster;

/// <summary>
/// How a round's input vector of m words is cut into slices of <see cref="SliceSize"/> words (the last may be shorter):
/// slice k holds words [k·size, min(m, (k+1)·size)).
/// </summary>
[GenerateSerializer]
[Alias("securefed.SliceLayout")]
public sealed record SliceLayout
{
    /// <summary>Creates the layout.</summary>
    public SliceLayout(int vectorLength, int sliceSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vectorLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sliceSize, 1);
        VectorLength = vectorLength;
        SliceSize = sliceSize;
    }

    /// <summary>m.</summary>
    [Id(0)]
    public int VectorLength { get; init; }

    /// <summary>Words per slice.</summary>
    [Id(1)]
    public int SliceSize { get; init; }

    /// <summary>The number of slices, ⌈m / size⌉.</summary>
    public int Count => (int)(((long)VectorLength + SliceSize - 1) / SliceSize);

    /// <summary>Index of slice <paramref name="slice"/>'s first word.</summary>
    public int Offset(int slice) => CheckedSlice(slice) * SliceSize;

    /// <summary>Words in slice <paramref name="slice"/>.</summary>
    public int Length(int slice) => Math.Min(SliceSize, VectorLength - Offset(slice));

    private int CheckedSlice(int slice)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slice);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slice, Count);
        return slice;
    }
}
