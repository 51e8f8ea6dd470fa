using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>The Orleans wire form of <see cref="KeyAdvertisement"/> (the protocol types stay free of Orleans).</summary>
[GenerateSerializer]
[Alias("securefed.KeyAdvertisement")]
public struct KeyAdvertisementSurrogate
{
    /// <summary>KeyAdvertisement.Sender.</summary>
    [Id(0)]
    public int Sender { get; set; }

    /// <summary>KeyAdvertisement.EncryptionPublicKey.</summary>
    [Id(1)]
    public byte[] EncryptionPublicKey { get; set; }

    /// <summary>KeyAdvertisement.MaskingPublicKey.</summary>
    [Id(2)]
    public byte[] MaskingPublicKey { get; set; }

    /// <summary>KeyAdvertisement.Signature.</summary>
    [Id(3)]
    public byte[] Signature { get; set; }

    /// <summary>KeyAdvertisement.SelfMaskCommitment.</summary>
    [Id(4)]
    public byte[] SelfMaskCommitment { get; set; }
}
