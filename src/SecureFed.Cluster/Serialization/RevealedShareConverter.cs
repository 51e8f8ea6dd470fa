using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>Converts <see cref="RevealedShare"/> to and from its Orleans surrogate.</summary>
[RegisterConverter]
public sealed class RevealedShareConverter : IConverter<RevealedShare, RevealedShareSurrogate>
{
    /// <inheritdoc />
    public RevealedShare ConvertFromSurrogate(in RevealedShareSurrogate surrogate) => new(surrogate.Owner, surrogate.Value);

    /// <inheritdoc />
    public RevealedShareSurrogate ConvertToSurrogate(in RevealedShare value) => new() { Owner = value.Owner, Value = value.Value };
}
