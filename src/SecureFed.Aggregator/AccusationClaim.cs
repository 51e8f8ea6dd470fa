namespace SecureFed.Aggregator;

/// <summary>
/// A site's one accusation of an attempt (docs/PROTOCOL.md "Blame"), from the moment it is claimed until it is judged or
/// freed: the accused's protocol index and the accuser's signature as sent, and the outcome an identical retry waits for.
/// </summary>
internal sealed class AccusationClaim(ulong accused, byte[] signature)
{
    private readonly TaskCompletionSource<bool> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The accused's protocol index as the accusation named it.</summary>
    public ulong Accused { get; } = accused;

    /// <summary>True once judged (kept for the attempt); false when freed (refused as unverifiable, or judging failed).</summary>
    public Task<bool> Outcome => _outcome.Task;

    /// <summary>Whether <paramref name="otherAccused"/> and <paramref name="otherSignature"/> are this accusation's (an identical retry).</summary>
    public bool Matches(ulong otherAccused, ReadOnlySpan<byte> otherSignature) => Accused == otherAccused && otherSignature.SequenceEqual(signature);

    /// <summary>Ends the claim: <paramref name="judged"/> true keeps it for the attempt, false frees it.</summary>
    public void End(bool judged) => _outcome.TrySetResult(judged);
}
