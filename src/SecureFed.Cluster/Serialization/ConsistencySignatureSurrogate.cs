using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>The Orleans wire form of <see cref="ConsistencySignature"/> (the protocol types stay free of Orleans).</summary>
[GenerateSerializer]
[Alias("securefed.ConsistencySignature")]
public struct ConsistencySignatureSurrogate
{
    /// <summary>ConsistencySignature.Sender.</summary>
    [Id(0)]
    public int Sender { get; set; }

    /// <summary>ConsistencySignature.Signature.</summary>
    [Id(1)]
    public byte[] Signature { get; set; }
}
