using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>Converts <see cref="UnmaskRequest"/> to and from its Orleans surrogate.</summary>
[RegisterConverter]
public sealed class UnmaskRequestConverter : IConverter<UnmaskRequest, UnmaskRequestSurrogate>
{
    /// <inheritdoc />
    public UnmaskRequest ConvertFromSurrogate(in UnmaskRequestSurrogate surrogate) => new(surrogate.Survivors, surrogate.Dropped, surrogate.Signatures);

    /// <inheritdoc />
    public UnmaskRequestSurrogate ConvertToSurrogate(in UnmaskRequest value) => new() { Survivors = [.. value.Survivors], Dropped = [.. value.Dropped], Signatures = [.. value.Signatures] };
}
