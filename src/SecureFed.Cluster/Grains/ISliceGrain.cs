namespace SecureFed.Cluster.Grains;

/// <summary>
/// One slice of one round's input vector (key "federation/round/slice"): checks each site's chunk of its masked input,
/// holds it until the round grain commits the site (every slice of its input arrived), adds it into the slice's running
/// sum, and at the end removes the masks from the slice. It never sees more than its slice of any input.
/// </summary>
[Alias("securefed.ISliceGrain")]
public interface ISliceGrain : IGrainWithStringKey
{
    /// <summary>Prepares the slice: words [offset, offset + length) of an m-word vector mod 2^b.</summary>
    [Alias("Open")]
    Task OpenAsync(int offset, int length, int vectorLength, int bitWidth);

    /// <summary>
    /// Receives <paramref name="sender"/>'s chunk for this slice; checks its length and that every word is below 2^b.
    /// Returns false for an identical retry; throws <see cref="ClusterProtocolException"/> for a bad or conflicting chunk.
    /// The chunk is <see cref="Orleans.Concurrency.Immutable{T}"/>: a caller on the grain's own silo hands over its array, which the grain keeps
    /// until the commit without a copy, so the caller must not change it afterwards.
    /// </summary>
    [Alias("AddChunk")]
    Task<bool> AddChunkAsync(int sender, Orleans.Concurrency.Immutable<uint[]> chunk);

    /// <summary>Adds the held chunk of <paramref name="sender"/> into the running sum (called by the round grain).</summary>
    [Alias("Commit")]
    Task CommitAsync(int sender);

    /// <summary>Ends input collection: drops uncommitted chunks and returns the committed senders, ascending.</summary>
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
