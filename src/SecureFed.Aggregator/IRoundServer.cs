using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>
/// The server side of one round attempt as the aggregator's gRPC service and <see cref="RoundCoordinator"/> use it: the
/// protocol state machine in this process (<see cref="ServerRound"/>, the default) or a round of the aggregator cluster
/// (docs/cluster.md §6). Every check, refusal reason and audit event stays with the callers, shared by both.
/// A refused message throws <see cref="ProtocolViolationException"/>; a round that can no longer complete throws
/// <see cref="RoundAbortedException"/>.
/// </summary>
public interface IRoundServer
{
    /// <summary>The stage currently collecting messages, as last known (exact for the in-process server).</summary>
    ProtocolStage Stage { get; }

    /// <summary>Parties that delivered for the current stage, as last known (displays; decisions use <see cref="StatusAsync"/>).</summary>
    IReadOnlyCollection<int> Delivered { get; }

    /// <summary>Parties expected at the current stage, as last known.</summary>
    IReadOnlyCollection<int> Expected { get; }

    /// <summary>The current stage with who is expected and who has delivered (asks the cluster when there is one).</summary>
    Task<RoundServerStatus> StatusAsync(CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.AcceptAdvertisement"/>.</summary>
    Task<bool> AcceptAdvertisementAsync(KeyAdvertisement advertisement, CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.CloseAdvertiseKeys"/>.</summary>
    Task<IReadOnlyList<int>> CloseAdvertiseKeysAsync(CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.AdvertisementsFor"/>.</summary>
    Task<IReadOnlyList<KeyAdvertisement>> AdvertisementsForAsync(int recipient, CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.AcceptShares"/>.</summary>
    Task<bool> AcceptSharesAsync(int sender, IReadOnlyList<EncryptedShare> shares, CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.CloseShareKeys"/>.</summary>
    Task<IReadOnlyList<int>> CloseShareKeysAsync(CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.SharesFor"/>.</summary>
    Task<IReadOnlyList<EncryptedShare>> SharesForAsync(int recipient, CancellationToken cancellationToken);

    /// <summary>
    /// <see cref="ServerRound.AcceptMaskedInput"/>: the whole masked input of <paramref name="sender"/>. The memory is the
    /// caller's and may be reused once the task completes.
    /// </summary>
    Task AcceptMaskedInputAsync(int sender, ReadOnlyMemory<uint> maskedInput, CancellationToken cancellationToken);

    /// <summary>
    /// Protocol version 4: where each slice of a masked input is uploaded, or null when this server takes the masked input
    /// whole only (the single process; a cluster with a silo that serves no agents).
    /// </summary>
    SliceUploadLayout? SliceUploads { get; }

    /// <summary>
    /// Protocol version 4: slice <paramref name="slice"/> of <paramref name="sender"/>'s masked input, whose SHA-256 (lower-case
    /// hex, little-endian u32 words) is <paramref name="sha256"/>, as it arrives: the implementation calls
    /// <paramref name="words"/> once, handing it the callback that takes each piece (its words and their offset within the
    /// slice, in order; the memory is the caller's again when the callback's task completes). <paramref name="words"/>
    /// returns the refusal of a malformed upload, or null. The sender counts as having sent its masked input once every
    /// slice is in. Returns whether the slice was fresh (false for an identical retry) or the refusal (a malformed upload,
    /// words that do not match <paramref name="sha256"/>), in which case nothing of the upload is kept.
    /// </summary>
    Task<SliceUploadOutcome> AcceptMaskedInputSliceAsync(int sender, int slice, string sha256, SliceWordsReader words, CancellationToken cancellationToken);

    /// <summary>
    /// Protocol version 4: null when slice <paramref name="slice"/> is hosted by this process (its words may be uploaded
    /// here), else the endpoint that hosts it. Asked before any word of a slice upload is read.
    /// </summary>
    Task<string?> SliceElsewhereAsync(int slice, CancellationToken cancellationToken);

    /// <summary>The SHA-256 of each slice of <paramref name="sender"/>'s committed masked input, by slice (empty when it was not sent by slices).</summary>
    Task<IReadOnlyList<string>> SliceDigestsAsync(int sender, CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.CloseMaskedInput"/>.</summary>
    Task<IReadOnlyList<int>> CloseMaskedInputAsync(CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.AcceptConsistencySignature"/>.</summary>
    Task<bool> AcceptConsistencySignatureAsync(ConsistencySignature signature, CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.CloseConsistency"/>.</summary>
    Task<UnmaskRequest> CloseConsistencyAsync(CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.AcceptUnmaskResponse"/>.</summary>
    Task<bool> AcceptUnmaskResponseAsync(UnmaskResponse response, CancellationToken cancellationToken);

    /// <summary>
    /// <see cref="ServerRound.UnmaskingShortfall"/>: why the unmasking answers so far would not rebuild a secret that
    /// <paramref name="awaited"/>'s answer could still help rebuild, or null when there is none (or the round is past
    /// Unmasking). Asked before the stage stops waiting for its last member, <paramref name="awaited"/>.
    /// </summary>
    Task<string?> UnmaskingShortfallAsync(int awaited, CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.Finish"/>: the unmasked sum and who is in it.</summary>
    Task<AggregationResult> FinishAsync(CancellationToken cancellationToken);

    /// <summary><see cref="ServerRound.Abort"/>; never throws (a lost cluster round is already over).</summary>
    Task AbortAsync(string reason, CancellationToken cancellationToken);
}
