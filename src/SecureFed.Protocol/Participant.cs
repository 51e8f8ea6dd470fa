namespace SecureFed.Protocol;

/// <summary>
/// A member of a round's cohort: its protocol index (the Shamir x-coordinate, 1-based), its site name and its
/// long-term Ed25519 identity public key (from the federation manifest).
/// </summary>
public sealed record Participant(int Index, string Name, byte[] IdentityPublicKey);
