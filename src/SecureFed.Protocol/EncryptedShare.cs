namespace SecureFed.Protocol;

/// <summary>
/// ShareKeys: the AES-256-GCM envelope (nonce ‖ ciphertext ‖ tag) holding the sender's shares of b and s for one
/// recipient. The aggregator relays it without being able to read it.
/// </summary>
public sealed record EncryptedShare(int Sender, int Recipient, byte[] Ciphertext);
