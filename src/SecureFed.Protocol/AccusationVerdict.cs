namespace SecureFed.Protocol;

/// <summary>
/// The outcome of checking a <see cref="ShareAccusation"/> against the envelope it names: who is at fault and why.
/// </summary>
/// <param name="AccusedAtFault">True when the envelope is invalid (the accused sent it); false when it is a valid envelope
/// and the accusation is false (the accuser is at fault).</param>
/// <param name="Reason">What is wrong with the envelope, or why the accusation is false.</param>
public sealed record AccusationVerdict(bool AccusedAtFault, string Reason);
