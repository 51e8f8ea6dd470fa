namespace SecureFed.Protocol;

/// <summary>
/// A survivor's unmasking answer: b-shares for survivors and s-shares for dropped sites, never both for one peer.
/// </summary>
public sealed record UnmaskResponse(int Sender, IReadOnlyList<RevealedShare> SelfMaskShares, IReadOnlyList<RevealedShare> MaskingKeyShares);
