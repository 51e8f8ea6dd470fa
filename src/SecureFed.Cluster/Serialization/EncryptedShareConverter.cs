using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>Converts <see cref="EncryptedShare"/> to and from its Orleans surrogate.</summary>
[RegisterConverter]
public sealed class EncryptedShareConverter : IConverter<EncryptedShare, EncryptedShareSurrogate>
{
    /// <inheritdoc />
    public EncryptedShare ConvertFromSurrogate(in EncryptedShareSurrogate surrogate) => new(surrogate.Sender, surrogate.Recipient, surrogate.Ciphertext);

    /// <inheritdoc />
    public EncryptedShareSurrogate ConvertToSurrogate(in EncryptedShare value) => new() { Sender = value.Sender, Recipient = value.Recipient, Ciphertext = value.Ciphertext };
}
