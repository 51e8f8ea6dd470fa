namespace SecureFed.Protocol;

/// <summary>
/// AdvertiseKeys: a site's two fresh X25519 public keys (c: share encryption, s: pairwise masking) and its commitment
/// to the self-mask seed b_u (<see cref="ProtocolLabels.SelfMaskCommitment"/>), signed with its long-term Ed25519
/// identity key over <see cref="ProtocolLabels.AdvertisementTranscript"/>.
/// </summary>
public sealed record KeyAdvertisement(int Sender, byte[] EncryptionPublicKey, byte[] MaskingPublicKey, byte[] Signature, byte[] SelfMaskCommitment);
