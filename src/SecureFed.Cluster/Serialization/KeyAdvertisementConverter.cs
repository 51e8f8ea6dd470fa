using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>Converts <see cref="KeyAdvertisement"/> to and from its Orleans surrogate.</summary>
[RegisterConverter]
public sealed class KeyAdvertisementConverter : IConverter<KeyAdvertisement, KeyAdvertisementSurrogate>
{
    /// <inheritdoc />
    public KeyAdvertisement ConvertFromSurrogate(in KeyAdvertisementSurrogate surrogate) => new(surrogate.Sender, surrogate.EncryptionPublicKey, surrogate.MaskingPublicKey, surrogate.Signature, surrogate.SelfMaskCommitment);

    /// <inheritdoc />
    public KeyAdvertisementSurrogate ConvertToSurrogate(in KeyAdvertisement value) => new() { Sender = value.Sender, EncryptionPublicKey = value.EncryptionPublicKey, MaskingPublicKey = value.MaskingPublicKey, Signature = value.Signature, SelfMaskCommitment = value.SelfMaskCommitment };
}
