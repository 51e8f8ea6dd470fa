using SecureFed.Protocol;

namespace SecureFed.Agent;

/// <summary>
/// Fault injection for demos and tests: makes the agent go silent (as if its process died) before a given stage of a
/// given round. Production agents leave it unset.
/// </summary>
/// <param name="Round">The round in which to drop (0 = every round).</param>
/// <param name="BeforeStage">The first stage at which the agent sends nothing.</param>
public sealed record DropoutHook(long Round, ProtocolStage BeforeStage)
{
    /// <summary>True when the agent must stay silent at <paramref name="stage"/> of <paramref name="round"/>.</summary>
    public bool Drops(long round, ProtocolStage stage) => (Round == 0 || Round == round) && stage >= BeforeStage;
}
