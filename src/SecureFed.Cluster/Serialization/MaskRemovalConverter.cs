using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>Converts <see cref="MaskRemoval"/> to and from its Orleans surrogate.</summary>
[RegisterConverter]
public sealed class MaskRemovalConverter : IConverter<MaskRemoval, MaskRemovalSurrogate>
{
    /// <inheritdoc />
    public MaskRemoval ConvertFromSurrogate(in MaskRemovalSurrogate surrogate) => new(surrogate.Seed, surrogate.Domain, surrogate.Add);

    /// <inheritdoc />
    public MaskRemovalSurrogate ConvertToSurrogate(in MaskRemoval value) => new() { Seed = value.Seed, Domain = value.Domain, Add = value.Add };
}
