namespace SecureFed.Cluster.Grains;

/// <summary>
/// One slice of one round's input vector (key "federation/round/slice"): checks each site's chunk of its masked input and
/// adds it into the slice's running sum while it arrives, keeping a copy on local disk until the round grain commits the
/// site (every slice of its input arrived) so that a chunk whose site is not committed by the close of the stage can be
/// subtracted again; at the end it removes the masks from the slice. It never sees more than its slice of any input.
/// </summary>
[Alias("securefed.ISliceGrain")]
public interface ISliceGrain : IGrainWithStringKey
{
    /// <summary>Prepares the slice: words [offset, offset + length) of an m-word vector mod 2^b.</summary>
    [Alias("Open")]
    Task OpenAsync(int offset, int length, int vectorLength, int bitWidth);

    /// <summary>
    /// Receives <paramref name="sender"/>'s whole chunk for this slice in one call (<see cref="BeginChunkAsync"/>,
    /// <see cref="AddPieceAsync"/> and <see cref="EndChunkAsync"/> with its SHA-256). Returns false for an identical retry
    /// (same SHA-256); throws <see cref="ClusterProtocolException"/> for a bad or conflicting chunk. The chunk is
    /// <see cref="Orleans.Concurrency.Immutable{T}"/>: a caller on the grain's own silo passes its array without a copy; the
    /// grain does not keep it after the call.
    /// </summary>
    [Alias("AddChunk")]
    Task<bool> AddChunkAsync(int sender, Orleans.Concurrency.Immutable<uint[]> chunk);

    /// <summary>
    /// Starts receiving <paramref name="sender"/>'s chunk piece by piece; <paramref name="sha256"/> (lower-case hex) is the
    /// SHA-256 of its words as little-endian u32. Returns the upload's id for <see cref="AddPieceAsync"/>. If the sender's
    /// chunk was already added with the same digest this upload is a retry (its words are checked, not added); with another
    /// digest it is refused (<see cref="ClusterProtocolException"/>, "already sent"). An earlier upload of the sender that
    /// is still open is abandoned (its words leave the sum).
    /// </summary>
    [Alias("BeginChunk")]
    Task<long> BeginChunkAsync(int sender, string sha256);

    /// <summary>
    /// The next <paramref name="count"/> words of an upload, starting at word <paramref name="offset"/> of the slice (pieces
    /// in order): checked (each word below 2^b), spilled to local disk and added into the sum. A bad piece abandons the
    /// upload and throws <see cref="ClusterProtocolException"/>; a spill that cannot be written throws
    /// <see cref="ClusterRoundAbortedException"/> (the round must abort). The grain does not keep the array after the call.
    /// </summary>
    [Alias("AddPiece")]
    Task AddPieceAsync(int sender, long upload, int offset, Orleans.Concurrency.Immutable<uint[]> words, int count);

    /// <summary>
    /// Ends an upload: every word arrived and they match the announced SHA-256, else the upload's words leave the sum and
    /// <see cref="ClusterProtocolException"/> is thrown. Returns false for an identical retry.
    /// </summary>
    [Alias("EndChunk")]
    Task<bool> EndChunkAsync(int sender, long upload);

    /// <summary>An upload that will not be ended (its stream broke): its words leave the sum. Does nothing for an upload that is not open.</summary>
    [Alias("AbandonChunk")]
    Task AbandonChunkAsync(int sender, long upload);

    /// <summary>
    /// Commits <paramref name="sender"/>'s added chunk (called by the round grain once every slice has it): its words stay
    /// in the sum and its spill is deleted.
    /// </summary>
    [Alias("Commit")]
    Task CommitAsync(int sender);

    /// <summary>The round was aborted: deletes the spills and ends the activation; every later call says the round was aborted.</summary>
    [Alias("Discard")]
    Task DiscardAsync();

    /// <summary>
    /// Ends input collection: subtracts every chunk that was added (or partly added) and not committed, and returns the
    /// committed senders, ascending. Throws <see cref="ClusterRoundAbortedException"/> if the sum cannot be made to hold
    /// exactly the committed chunks (a spill could not be written or read back).
    /// </summary>
    [Alias("Close")]
    Task<int[]> CloseAsync();

    /// <summary>Removes the masks from the slice's sum (called by the round grain once the secrets are rebuilt).</summary>
    [Alias("Unmask")]
    Task UnmaskAsync(Protocol.MaskRemoval[] removals);

    /// <summary>
    /// The unmasked slice of the sum (after <see cref="UnmaskAsync"/>), as <see cref="Orleans.Concurrency.Immutable{T}"/>:
    /// a caller on the grain's own silo gets the grain's array itself (no copy; the grain never changes it again).
    /// </summary>
    [Alias("Result")]
    Task<Orleans.Concurrency.Immutable<uint[]>> ResultAsync();

    /// <summary>
    /// Words [<paramref name="from"/>, <paramref name="from"/> + <paramref name="count"/>) of the unmasked slice (indices
    /// within the slice), after <see cref="UnmaskAsync"/>, without ending the activation: the coordinator reads the sum's
    /// tail (weight and evaluation slots) and then every slice, in order, a piece at a time this way, then calls
    /// <see cref="EndAsync"/>.
    /// </summary>
    [Alias("Words")]
    Task<uint[]> WordsAsync(int from, int count);

    /// <summary>The slice was read (<see cref="WordsAsync"/>): the activation may go, as after <see cref="ResultAsync"/>.</summary>
    [Alias("End")]
    Task EndAsync();

    /// <summary>The address of the silo hosting this activation (for placement checks and operators).</summary>
    [Alias("Silo")]
    Task<string> SiloAsync();

    /// <summary>
    /// The https:// URL where agents upload this slice (protocol version 4): the agent endpoint of the silo hosting this
    /// activation (<see cref="Front.SiloAgentEndpoint"/>), or empty when that silo serves no agents.
    /// </summary>
    [Alias("Endpoint")]
    Task<string> EndpointAsync();
}
