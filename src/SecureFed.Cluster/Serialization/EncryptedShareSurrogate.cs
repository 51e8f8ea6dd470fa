using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>The Orleans wire form of <see cref="EncryptedShare"/> (the protocol types stay free of Orleans).</summary>
[GenerateSerializer]
[Alias("securefed.EncryptedShare")]
public struct EncryptedShareSurrogate
{
    /// <summary>EncryptedShare.Sender.</summary>
    [Id(0)]
    public int Sender { get; set; }

    /// <summary>EncryptedShare.Recipient.</summary>
    [Id(1)]
    public int Recipient { get; set; }

    /// <summary>EncryptedShare.Ciphertext.</summary>
    [Id(2)]
    public byte[] Ciphertext { get; set; }
}
