using SecureFed.Protocol;

namespace SecureFed.Cluster.Bench;

/// <summary>
/// The single-process reference for <c>securefed bench cluster</c>: one unsliced <see cref="ServerRound"/> (what the
/// single-process aggregator's round coordinator runs) in a grain, so that it can run in a process of its own and
/// receive the same messages over the same transport as the cluster. Whole masked inputs go to
/// <see cref="AcceptMaskedInputAsync"/>; <see cref="FinishAsync"/> is <see cref="ServerRound.Finish"/>. Key: "federation/round".
/// </summary>
[Alias("securefed.IReferenceRoundGrain")]
public interface IReferenceRoundGrain : IGrainWithStringKey
{
    /// <summary>Opens the round (<see cref="ClusterRoundSpec.SliceSize"/> is ignored).</summary>
    [Alias("Open")]
    Task OpenAsync(ClusterRoundSpec spec);

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

    /// <summary><see cref="ServerRound.AcceptMaskedInput"/>: the whole vector.</summary>
    [Alias("AcceptMaskedInput")]
    Task<bool> AcceptMaskedInputAsync(int sender, uint[] maskedInput);

    /// <summary><see cref="ServerRound.CloseMaskedInput"/>.</summary>
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

    /// <summary><see cref="ServerRound.Finish"/>: the sum and who is in it.</summary>
    [Alias("Finish")]
    Task<ReferenceRoundResult> FinishAsync();
}
