using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>The Orleans wire form of <see cref="RevealedShare"/> (the protocol types stay free of Orleans).</summary>
[GenerateSerializer]
[Alias("securefed.RevealedShare")]
public struct RevealedShareSurrogate
{
    /// <summary>RevealedShare.Owner.</summary>
    [Id(0)]
    public int Owner { get; set; }

    /// <summary>RevealedShare.Value.</summary>
    [Id(1)]
    public byte[] Value { get; set; }
}
