using SecureFed.Aggregator;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A round server that passes every call to <paramref name="inner"/>; a test overrides the calls it changes (a close that
/// fails, an upload held back until the close, ...).
/// </summary>
internal abstract class DelegatingRoundServer(IRoundServer inner) : IRoundServer
{
    /// <summary>The round server every call goes to.</summary>
    protected IRoundServer Inner => inner;

    public ProtocolStage Stage => inner.Stage;

    public IReadOnlyCollection<int> Delivered => inner.Delivered;

    public IReadOnlyCollection<int> Expected => inner.Expected;

    public SliceUploadLayout? SliceUploads => inner.SliceUploads;

    public virtual Task<RoundServerStatus> StatusAsync(CancellationToken cancellationToken) => inner.StatusAsync(cancellationToken);

    public virtual Task<bool> AcceptAdvertisementAsync(KeyAdvertisement advertisement, CancellationToken cancellationToken) => inner.AcceptAdvertisementAsync(advertisement, cancellationToken);

    public virtual Task<IReadOnlyList<int>> CloseAdvertiseKeysAsync(CancellationToken cancellationToken) => inner.CloseAdvertiseKeysAsync(cancellationToken);

    public virtual Task<IReadOnlyList<KeyAdvertisement>> AdvertisementsForAsync(int recipient, CancellationToken cancellationToken) => inner.AdvertisementsForAsync(recipient, cancellationToken);

    public virtual Task<bool> AcceptSharesAsync(int sender, IReadOnlyList<EncryptedShare> shares, CancellationToken cancellationToken) => inner.AcceptSharesAsync(sender, shares, cancellationToken);

    public virtual Task<IReadOnlyList<int>> CloseShareKeysAsync(CancellationToken cancellationToken) => inner.CloseShareKeysAsync(cancellationToken);

    public virtual Task<IReadOnlyList<EncryptedShare>> SharesForAsync(int recipient, CancellationToken cancellationToken) => inner.SharesForAsync(recipient, cancellationToken);

    public virtual Task AcceptMaskedInputAsync(int sender, ReadOnlyMemory<uint> maskedInput, CancellationToken cancellationToken) => inner.AcceptMaskedInputAsync(sender, maskedInput, cancellationToken);

    public virtual Task<SliceUploadOutcome> AcceptMaskedInputSliceAsync(int sender, int slice, string sha256, SliceWordsReader words, CancellationToken cancellationToken) =>
        inner.AcceptMaskedInputSliceAsync(sender, slice, sha256, words, cancellationToken);

    public virtual Task<string?> SliceElsewhereAsync(int slice, CancellationToken cancellationToken) => inner.SliceElsewhereAsync(slice, cancellationToken);

    public virtual Task<IReadOnlyList<string>> SliceDigestsAsync(int sender, CancellationToken cancellationToken) => inner.SliceDigestsAsync(sender, cancellationToken);

    public virtual Task<IReadOnlyList<int>> CloseMaskedInputAsync(CancellationToken cancellationToken) => inner.CloseMaskedInputAsync(cancellationToken);

    public virtual Task<bool> AcceptConsistencySignatureAsync(ConsistencySignature signature, CancellationToken cancellationToken) => inner.AcceptConsistencySignatureAsync(signature, cancellationToken);

    public virtual Task<UnmaskRequest> CloseConsistencyAsync(CancellationToken cancellationToken) => inner.CloseConsistencyAsync(cancellationToken);

    public virtual Task<bool> AcceptUnmaskResponseAsync(UnmaskResponse response, CancellationToken cancellationToken) => inner.AcceptUnmaskResponseAsync(response, cancellationToken);

    public virtual Task<string?> UnmaskingShortfallAsync(int awaited, CancellationToken cancellationToken) => inner.UnmaskingShortfallAsync(awaited, cancellationToken);

    public virtual Task<AggregationResult> FinishAsync(CancellationToken cancellationToken) => inner.FinishAsync(cancellationToken);

    public virtual Task AbortAsync(string reason, CancellationToken cancellationToken) => inner.AbortAsync(reason, cancellationToken);
}
