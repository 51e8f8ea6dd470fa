using SecureFed.Protocol;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// One round of the cluster (key "federation/round"): hosts a sliced <see cref="ServerRound"/> for the small stages
/// (keys, shares, consistency, unmasking: O(n·k) data) and directs the slice grains, which hold the O(m) sum. Every
/// method mirrors the <see cref="ServerRound"/> call of the same name. A refused message throws
/// <see cref="ClusterProtocolException"/>; an aborted round throws <see cref="ClusterRoundAbortedException"/> with the reason.
/// </summary>
[Alias("securefed.IRoundGrain")]
public interface IRoundGrain : IGrainWithStringKey
{
    /// <summary>Opens the round and its slices (idempotent for the same spec).</summary>
    [Alias("Open")]
    Task OpenAsync(ClusterRoundSpec spec);

    /// <summary>The round's slices.</summary>
    [Alias("Layout")]
    Task<SliceLayout> LayoutAsync();

    /// <summary><see cref="ServerRound.AcceptAdvertisement"/>.</summary>
    [Alias("AcceptAdvertisement")]
    Task<bool> AcceptAdvertisementAsync(KeyAdvertisement advertisement);

    /// <summary><see cref="ServerRound.CloseAdvertiseKeys"/>.</summary>
    [Alias("CloseAdvertiseKeys")]
    Task<int[]> CloseAdvertiseKeysAsync();

    /// <summary><see cref="ServerRound.AdvertisementsFor"/>.</summary>
    [Alias("AdvertisementsFor")]
    Task<KeyAdvertisement[]> AdvertisementsForAsync(int recipient);

    /// <summary><see cref="ServerRound.AcceptShares"/>.</summary>
    [Alias("AcceptShares")]
    Task<bool> AcceptSharesAsync(int sender, EncryptedShare[] shares);

    /// <summary><see cref="ServerRound.CloseShareKeys"/>.</summary>
    [Alias("CloseShareKeys")]
    Task<int[]> CloseShareKeysAsync();

    /// <summary><see cref="ServerRound.SharesFor"/>.</summary>
    [Alias("SharesFor")]
    Task<EncryptedShare[]> SharesForAsync(int recipient);

    /// <summary>
    /// Records that slice <paramref name="slice"/> of <paramref name="sender"/>'s masked input was accepted by its slice
    /// grain. When every slice of the sender is in, the round commits it: each slice grain adds its chunk and the sender
    /// joins U3. Returns true when this call completed the sender.
    /// </summary>
    /// <remarks><paramref name="sha256"/> is the slice's SHA-256 (lower-case hex, little-endian u32 words), kept for the audit.</remarks>
    [Alias("SliceDelivered")]
    Task<bool> SliceDeliveredAsync(int sender, int slice, string sha256);

    /// <summary>
    /// Protocol version 4: may <paramref name="site"/> upload slice <paramref name="slice"/> of its masked input for
    /// <paramref name="round"/>/<paramref name="sessionId"/> now (<see cref="SliceAdmission.Decide"/>)? A round without state refuses.
    /// </summary>
    [Alias("AdmitSlice")]
    Task<SliceAdmission> AdmitSliceAsync(long round, string sessionId, string site, long slice);

    /// <summary>
    /// The open round takes masked inputs whole (protocol version 3: the coordinator announces no slices): from now on
    /// <see cref="AdmitSliceAsync"/> refuses every slice upload (<see cref="SliceRefusalKind.WholeInputsOnly"/>). Called by
    /// the coordinator when it opens such a round, before the round leaves its first stage.
    /// </summary>
    [Alias("WholeInputsOnly")]
    Task WholeInputsOnlyAsync();

    /// <summary>The SHA-256 of each slice of <paramref name="sender"/>'s masked input, by slice, once every slice arrived (else empty).</summary>
    [Alias("SliceDigests")]
    Task<string[]> SliceDigestsAsync(int sender);

    /// <summary>
    /// <see cref="ServerRound.CloseMaskedInput"/>; also closes every slice and aborts the round when a slice does not
    /// hold exactly U3's chunks (e.g. its silo failed).
    /// </summary>
    [Alias("CloseMaskedInput")]
    Task<int[]> CloseMaskedInputAsync();

    /// <summary><see cref="ServerRound.AcceptConsistencySignature"/>.</summary>
    [Alias("AcceptConsistencySignature")]
    Task<bool> AcceptConsistencySignatureAsync(ConsistencySignature signature);

    /// <summary><see cref="ServerRound.CloseConsistency"/>.</summary>
    [Alias("CloseConsistency")]
    Task<UnmaskRequest> CloseConsistencyAsync();

    /// <summary><see cref="ServerRound.AcceptUnmaskResponse"/>.</summary>
    [Alias("AcceptUnmaskResponse")]
    Task<bool> AcceptUnmaskResponseAsync(UnmaskResponse response);

    /// <summary><see cref="ServerRound.UnmaskingShortfall"/>: changes nothing.</summary>
    [Alias("UnmaskingShortfall")]
    Task<string?> UnmaskingShortfallAsync(int awaited);

    /// <summary>
    /// <see cref="ServerRound.FinishSliced"/>: rebuilds the secrets, sends each slice grain the masks to remove, waits
    /// for every slice, records the round in the federation's ledger and returns who is in the sum.
    /// </summary>
    [Alias("Finish")]
    Task<ClusterRoundResult> FinishAsync();

    /// <summary>
    /// Aborts the round with <paramref name="reason"/> (recorded in the ledger); nothing further is revealed. A grain that
    /// holds no round (its silo failed, or it ended a while ago) throws <see cref="ClusterRoundAbortedException"/>, and one
    /// whose round completed (its sum unmasked) throws <see cref="ClusterProtocolException"/> and changes nothing (its
    /// slices are kept for the driver to read): in both cases the driver records the abort if it gives the round up.
    /// </summary>
    [Alias("Abort")]
    Task AbortAsync(string reason);

    /// <summary>
    /// <see cref="ServerRound.Stage"/>, <see cref="ServerRound.Expected"/> and <see cref="ServerRound.Delivered"/> in one
    /// call (the coordinator's stage-waiting); a round without state answers stage "Lost" with the reason.
    /// </summary>
    [Alias("Progress")]
    Task<ClusterRoundProgress> ProgressAsync();

    /// <summary>The round's stage and, when aborted, why.</summary>
    [Alias("Status")]
    Task<ClusterRoundStatus> StatusAsync();
}
