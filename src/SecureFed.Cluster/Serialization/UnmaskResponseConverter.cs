using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>Converts <see cref="UnmaskResponse"/> to and from its Orleans surrogate.</summary>
[RegisterConverter]
public sealed class UnmaskResponseConverter : IConverter<UnmaskResponse, UnmaskResponseSurrogate>
{
    /// <inheritdoc />
    public UnmaskResponse ConvertFromSurrogate(in UnmaskResponseSurrogate surrogate) => new(surrogate.Sender, surrogate.SelfMaskShares, surrogate.MaskingKeyShares);

    /// <inheritdoc />
    public UnmaskResponseSurrogate ConvertToSurrogate(in UnmaskResponse value) => new() { Sender = value.Sender, SelfMaskShares = [.. value.SelfMaskShares], MaskingKeyShares = [.. value.MaskingKeyShares] };
}
