namespace SecureFed.Protocol;

/// <summary>ConsistencyCheck: a survivor's Ed25519 signature over the survivor set U3.</summary>
public sealed record ConsistencySignature(int Sender, byte[] Signature);
