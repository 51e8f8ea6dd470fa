using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>The Orleans wire form of <see cref="Participant"/> (the protocol types stay free of Orleans).</summary>
[GenerateSerializer]
[Alias("securefed.Participant")]
public struct ParticipantSurrogate
{
    /// <summary>Participant.Index.</summary>
    [Id(0)]
    public int Index { get; set; }

    /// <summary>Participant.Name.</summary>
    [Id(1)]
    public string Name { get; set; }

    /// <summary>Participant.IdentityPublicKey.</summary>
    [Id(2)]
    public byte[] IdentityPublicKey { get; set; }
}
