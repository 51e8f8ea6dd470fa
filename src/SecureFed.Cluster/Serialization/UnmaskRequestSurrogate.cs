using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>The Orleans wire form of <see cref="UnmaskRequest"/> (the protocol types stay free of Orleans).</summary>
[GenerateSerializer]
[Alias("securefed.UnmaskRequest")]
public struct UnmaskRequestSurrogate
{
    /// <summary>UnmaskRequest.Survivors.</summary>
    [Id(0)]
    public int[] Survivors { get; set; }

    /// <summary>UnmaskRequest.Dropped.</summary>
    [Id(1)]
    public int[] Dropped { get; set; }

    /// <summary>UnmaskRequest.Signatures.</summary>
    [Id(2)]
    public ConsistencySignature[] Signatures { get; set; }
}
