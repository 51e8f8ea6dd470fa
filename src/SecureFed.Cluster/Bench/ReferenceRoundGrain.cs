using SecureFed.Protocol;

namespace SecureFed.Cluster.Bench;

/// <summary><see cref="IReferenceRoundGrain"/>: forwards to one unsliced <see cref="ServerRound"/>, in memory.</summary>
internal sealed class ReferenceRoundGrain : Grain, IReferenceRoundGrain
{
    private ServerRound? _server;

    public Task OpenAsync(ClusterRoundSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (_server is not null)
        {
            throw new ClusterProtocolException($"reference round {this.GetPrimaryKeyString()} is already open");
        }

        _server = new ServerRound(spec.ToParameters());
        return Task.CompletedTask;
    }

    public Task<bool> AcceptAdvertisementAsync(KeyAdvertisement advertisement) => Run(s => s.AcceptAdvertisement(advertisement));

    public Task<int[]> CloseAdvertiseKeysAsync() => Run(s => s.CloseAdvertiseKeys().ToArray());

    public Task<KeyAdvertisement[]> AdvertisementsForAsync(int recipient) => Run(s => s.AdvertisementsFor(recipient).ToArray());

    public Task<EncryptedShare[]> SharesForAsync(int recipient) => Run(s => s.SharesFor(recipient).ToArray());

    public Task<bool> AcceptSharesAsync(int sender, EncryptedShare[] shares) => Run(s => s.AcceptShares(sender, shares));

    public Task<int[]> CloseShareKeysAsync() => Run(s => s.CloseShareKeys().ToArray());

    public Task<bool> AcceptMaskedInputAsync(int sender, uint[] maskedInput)
        => Run(s =>
        {
            s.AcceptMaskedInput(sender, maskedInput);
            return true;
        });

    public Task<int[]> CloseMaskedInputAsync() => Run(s => s.CloseMaskedInput().ToArray());

    public Task<bool> AcceptConsistencySignatureAsync(ConsistencySignature signature) => Run(s => s.AcceptConsistencySignature(signature));

    public Task<UnmaskRequest> CloseConsistencyAsync() => Run(s =>
    {
        UnmaskRequest request = s.CloseConsistency();
        return new UnmaskRequest([.. request.Survivors], [.. request.Dropped], [.. request.Signatures]);
    });

    public Task<bool> AcceptUnmaskResponseAsync(UnmaskResponse response) => Run(s => s.AcceptUnmaskResponse(response));

    public Task<ReferenceRoundResult> FinishAsync() => Run(s =>
    {
        AggregationResult result = s.Finish();
        // The round is over: the activation (and its O(m) sum) may go.
        DeactivateOnIdle();
        return new ReferenceRoundResult(result.Sum, [.. result.Contributors]);
    });

    private Task<T> Run<T>(Func<ServerRound, T> call)
    {
        ServerRound server = _server ?? throw new ClusterRoundAbortedException($"reference round {this.GetPrimaryKeyString()} has no state");
        try
        {
            return Task.FromResult(call(server));
        }
        catch (ProtocolViolationException ex)
        {
            throw new ClusterProtocolException(ex.Message);
        }
        catch (RoundAbortedException ex)
        {
            throw new ClusterRoundAbortedException(ex.Message);
        }
    }
}
