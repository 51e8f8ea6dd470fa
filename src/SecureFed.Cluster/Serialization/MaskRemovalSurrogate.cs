using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>The Orleans wire form of <see cref="MaskRemoval"/> (the protocol types stay free of Orleans).</summary>
[GenerateSerializer]
[Alias("securefed.MaskRemoval")]
public struct MaskRemovalSurrogate
{
    /// <summary>MaskRemoval.Seed.</summary>
    [Id(0)]
    public byte[] Seed { get; set; }

    /// <summary>MaskRemoval.Domain.</summary>
    [Id(1)]
    public byte[] Domain { get; set; }

    /// <summary>MaskRemoval.Add.</summary>
    [Id(2)]
    public bool Add { get; set; }
}
