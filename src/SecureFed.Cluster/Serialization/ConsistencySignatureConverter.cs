using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>Converts <see cref="ConsistencySignature"/> to and from its Orleans surrogate.</summary>
[RegisterConverter]
public sealed class ConsistencySignatureConverter : IConverter<ConsistencySignature, ConsistencySignatureSurrogate>
{
    /// <inheritdoc />
    public ConsistencySignature ConvertFromSurrogate(in ConsistencySignatureSurrogate surrogate) => new(surrogate.Sender, surrogate.Signature);

    /// <inheritdoc />
    public ConsistencySignatureSurrogate ConvertToSurrogate(in ConsistencySignature value) => new() { Sender = value.Sender, Signature = value.Signature };
}
