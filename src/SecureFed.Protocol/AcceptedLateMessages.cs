namespace SecureFed.Protocol;

/// <summary>
/// What a round that ended keeps to answer an agent's retry as <see cref="ServerRound"/> answers it: the survivor
/// signatures it accepted (sender and signature bytes) and the senders whose unmasking response it accepted. A retry
/// of one of these (its first copy was accepted, the reply was lost) is a duplicate, not a late message. O(n): 64 bytes
/// per signer; no share, key or masked word is kept.
/// </summary>
public sealed class AcceptedLateMessages
{
    private readonly Dictionary<int, byte[]> _signatures;
    private readonly HashSet<int> _unmasked;

    public AcceptedLateMessages(IReadOnlyDictionary<int, byte[]> signatures, IEnumerable<int> unmasked)
    {
        ArgumentNullException.ThrowIfNull(signatures);
        ArgumentNullException.ThrowIfNull(unmasked);
        _signatures = signatures.ToDictionary(kv => kv.Key, kv => (byte[])kv.Value.Clone());
        _unmasked = [.. unmasked];
    }

    /// <summary>True when this exact survivor signature was accepted before (the same bytes from the same sender).</summary>
    public bool IsRetry(ConsistencySignature signature)
    {
        ArgumentNullException.ThrowIfNull(signature);
        return signature.Signature is not null && _signatures.TryGetValue(signature.Sender, out byte[]? accepted)
            && accepted.AsSpan().SequenceEqual(signature.Signature);
    }

    /// <summary>True when an unmasking response of this sender was accepted before (as <see cref="ServerRound.AcceptUnmaskResponse"/> judges a retry).</summary>
    public bool IsRetry(UnmaskResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return _unmasked.Contains(response.Sender);
    }
}
