using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>The Orleans wire form of <see cref="UnmaskResponse"/> (the protocol types stay free of Orleans).</summary>
[GenerateSerializer]
[Alias("securefed.UnmaskResponse")]
public struct UnmaskResponseSurrogate
{
    /// <summary>UnmaskResponse.Sender.</summary>
    [Id(0)]
    public int Sender { get; set; }

    /// <summary>UnmaskResponse.SelfMaskShares.</summary>
    [Id(1)]
    public RevealedShare[] SelfMaskShares { get; set; }

    /// <summary>UnmaskResponse.MaskingKeyShares.</summary>
    [Id(2)]
    public RevealedShare[] MaskingKeyShares { get; set; }
}
