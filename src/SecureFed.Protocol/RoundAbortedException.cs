namespace SecureFed.Protocol;

/// <summary>
/// The round cannot go on (fewer than t parties left at some stage, or a secret cannot be rebuilt); nothing further is
/// revealed. When the abort is one party's fault (<see cref="AtFault"/>) the coordinator blames and excludes it, so the
/// retry goes on without it (docs/PROTOCOL.md, "Blame").
/// </summary>
public sealed class RoundAbortedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RoundAbortedException(ProtocolStage stage, string reason)
        : this(stage, reason, null)
    {
    }

    /// <summary>Creates the exception, naming the party whose fault the abort is.</summary>
    /// <param name="stage">The stage at which the round was aborted.</param>
    /// <param name="reason">Why, in words a log reader understands.</param>
    /// <param name="atFault">The protocol index of the party shown to be at fault, or null.</param>
    public RoundAbortedException(ProtocolStage stage, string reason, int? atFault)
        : base(atFault is null ? $"round aborted at {stage}: {reason}" : $"round aborted at {stage}: party {atFault} at fault: {reason}")
    {
        Stage = stage;
        Reason = reason;
        AtFault = atFault;
    }

    /// <summary>The stage at which the round was aborted.</summary>
    public ProtocolStage Stage { get; }

    /// <summary>Why.</summary>
    public string Reason { get; }

    /// <summary>
    /// The protocol index of the party the abort is shown to be the fault of, or null when the abort blames nobody. Set
    /// when a dealer's revealed shares determine a secret that is not the one it committed to
    /// (<see cref="ServerRound.Finish"/>).
    /// </summary>
    public int? AtFault { get; }
}
