namespace SecureFed.Audit;

/// <summary>One signature line of a signed note: <c>— name base64(key ID || signature)</c>.</summary>
/// <param name="KeyName">The key name on the signature line.</param>
/// <param name="KeyId">The 32-bit key ID (first four bytes of the decoded signature, big-endian).</param>
/// <param name="Signature">The signature bytes after the key ID.</param>
public sealed record NoteSignature(string KeyName, uint KeyId, byte[] Signature);
