using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>The single-process aggregator's round: a <see cref="ServerRound"/> in this process, called synchronously.</summary>
internal sealed class LocalRoundServer : IRoundServer
{
    private readonly ServerRound _round;

    public LocalRoundServer(RoundParameters parameters) => _round = new ServerRound(parameters);

    public ProtocolStage Stage => _round.Stage;

    public IReadOnlyCollection<int> Delivered => _round.Delivered;

    public IReadOnlyCollection<int> Expected => _round.Expected;

    public Task<RoundServerStatus> StatusAsync(CancellationToken cancellationToken)
    {
        // Stage first: Expected and Delivered follow it, and a concurrent close only moves it forward.
        ProtocolStage stage = _round.Stage;
        return Task.FromResult(new RoundServerStatus(stage, _round.Expected, _round.Delivered));
    }

    public Task<bool> AcceptAdvertisementAsync(KeyAdvertisement advertisement, CancellationToken cancellationToken) => Task.FromResult(_round.AcceptAdvertisement(advertisement));

    public Task<IReadOnlyList<int>> CloseAdvertiseKeysAsync(CancellationToken cancellationToken) => Task.FromResult(_round.CloseAdvertiseKeys());

    public Task<IReadOnlyList<KeyAdvertisement>> AdvertisementsForAsync(int recipient, CancellationToken cancellationToken) => Task.FromResult(_round.AdvertisementsFor(recipient));

    public Task<bool> AcceptSharesAsync(int sender, IReadOnlyList<EncryptedShare> shares, CancellationToken cancellationToken) => Task.FromResult(_round.AcceptShares(sender, shares));

    public Task<IReadOnlyList<int>> CloseShareKeysAsync(CancellationToken cancellationToken) => Task.FromResult(_round.CloseShareKeys());

    public Task<IReadOnlyList<EncryptedShare>> SharesForAsync(int recipient, CancellationToken cancellationToken) => Task.FromResult(_round.SharesFor(recipient));

    public Task AcceptMaskedInputAsync(int sender, ReadOnlyMemory<uint> maskedInput, CancellationToken cancellationToken)
    {
        _round.AcceptMaskedInput(sender, maskedInput.Span);
        return Task.CompletedTask;
    }

    public SliceUploadLayout? SliceUploads => null;

    public Task<SliceUploadOutcome> AcceptMaskedInputSliceAsync(int sender, int slice, string sha256, SliceWordsReader words, CancellationToken cancellationToken)
        => throw new ProtocolViolationException(ProtocolStage.MaskedInputCollection,
            "this aggregator takes the masked input whole (protocol version 3); it announced no slices", sender);

    public Task<string?> SliceElsewhereAsync(int slice, CancellationToken cancellationToken) => Task.FromResult<string?>(null);

    public Task<IReadOnlyList<string>> SliceDigestsAsync(int sender, CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<string>>([]);

    public Task<IReadOnlyList<int>> CloseMaskedInputAsync(CancellationToken cancellationToken) => Task.FromResult(_round.CloseMaskedInput());

    public Task<bool> AcceptConsistencySignatureAsync(ConsistencySignature signature, CancellationToken cancellationToken) => Task.FromResult(_round.AcceptConsistencySignature(signature));

    public Task<UnmaskRequest> CloseConsistencyAsync(CancellationToken cancellationToken) => Task.FromResult(_round.CloseConsistency());

    public Task<bool> AcceptUnmaskResponseAsync(UnmaskResponse response, CancellationToken cancellationToken) => Task.FromResult(_round.AcceptUnmaskResponse(response));

    public Task<string?> UnmaskingShortfallAsync(int awaited, CancellationToken cancellationToken) => Task.FromResult(_round.UnmaskingShortfall(awaited));

    public Task<AggregationResult> FinishAsync(CancellationToken cancellationToken) => Task.FromResult(_round.Finish());

    public Task AbortAsync(string reason, CancellationToken cancellationToken)
    {
        _round.Abort(reason);
        return Task.CompletedTask;
    }
}
