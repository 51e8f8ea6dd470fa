using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>Converts <see cref="RejectedShare"/> to and from its Orleans surrogate.</summary>
[RegisterConverter]
public sealed class RejectedShareConverter : IConverter<RejectedShare, RejectedShareSurrogate>
{
    /// <inheritdoc />
    public RejectedShare ConvertFromSurrogate(in RejectedShareSurrogate surrogate) => new(surrogate.Responder, surrogate.Owner, (RevealedShareKind)surrogate.Kind);

    /// <inheritdoc />
    public RejectedShareSurrogate ConvertToSurrogate(in RejectedShare value) => new() { Responder = value.Responder, Owner = value.Owner, Kind = (int)value.Kind };
}
