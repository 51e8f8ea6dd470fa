namespace SecureFed.Aggregator;

/// <summary>
/// Where the slices of a masked input go in protocol version 4 (docs/PROTOCOL.md "Version 4: uploads by slice"): slice k
/// holds words [k·<see cref="SliceSize"/>, min(m, (k+1)·<see cref="SliceSize"/>)) and is uploaded to
/// <see cref="Endpoints"/>[k], the agent-facing endpoint of the aggregator silo that hosts it.
/// </summary>
/// <param name="VectorLength">m.</param>
/// <param name="SliceSize">Words per slice.</param>
/// <param name="Endpoints">One https:// URL per slice.</param>
public sealed record SliceUploadLayout(int VectorLength, int SliceSize, IReadOnlyList<string> Endpoints)
{
    /// <summary>The number of slices, ⌈m / size⌉.</summary>
    public int Count => (int)(((long)VectorLength + SliceSize - 1) / SliceSize);

    /// <summary>Index of slice <paramref name="slice"/>'s first word.</summary>
    public int Offset(int slice) => slice * SliceSize;

    /// <summary>Words in slice <paramref name="slice"/>.</summary>
    public int Length(int slice) => Math.Min(SliceSize, VectorLength - Offset(slice));
}
