using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>Converts <see cref="Participant"/> to and from its Orleans surrogate.</summary>
[RegisterConverter]
public sealed class ParticipantConverter : IConverter<Participant, ParticipantSurrogate>
{
    /// <inheritdoc />
    public Participant ConvertFromSurrogate(in ParticipantSurrogate surrogate) => new(surrogate.Index, surrogate.Name, surrogate.IdentityPublicKey);

    /// <inheritdoc />
    public ParticipantSurrogate ConvertToSurrogate(in Participant value) => new() { Index = value.Index, Name = value.Name, IdentityPublicKey = value.IdentityPublicKey };
}
