namespace SecureFed.Protocol;

/// <summary>A decrypted Shamir share of <see cref="Owner"/>'s secret, revealed during unmasking.</summary>
public sealed record RevealedShare(int Owner, byte[] Value);
