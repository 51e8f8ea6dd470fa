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
        : this(stage, reason, atFault, null)
    {
    }

    /// <summary>
    /// Creates the exception, naming the party whose fault the abort is, or else the parties of which at least one
    /// caused it.
    /// </summary>
    /// <param name="stage">The stage at which the round was aborted.</param>
    /// <param name="reason">Why, in words a log reader understands.</param>
    /// <param name="atFault">The protocol index of the party shown to be at fault, or null.</param>
    /// <param name="suspects">When nobody is shown at fault: the protocol indices of the parties of which at least one
    /// caused the abort (ascending, distinct), or null.</param>
    public RoundAbortedException(ProtocolStage stage, string reason, int? atFault, IReadOnlyList<int>? suspects)
        : base(Format(stage, reason, atFault, suspects))
    {
        Stage = stage;
        Reason = reason;
        AtFault = atFault;
        Suspects = atFault is null && suspects is { Count: > 0 } ? [.. suspects.Distinct().Order()] : [];
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

    /// <summary>
    /// When <see cref="AtFault"/> is null: the protocol indices of the parties of which at least one caused the abort,
    /// ascending (a secret whose revealed shares cannot be rebuilt: its owner and the parties that revealed them), so the
    /// coordinator can find the one at fault by elimination over attempts (docs/PROTOCOL.md, "Blame: by elimination");
    /// empty when nobody is suspected.
    /// </summary>
    public IReadOnlyList<int> Suspects { get; }

    private static string Format(ProtocolStage stage, string reason, int? atFault, IReadOnlyList<int>? suspects) =>
        atFault is not null ? $"round aborted at {stage}: party {atFault} at fault: {reason}"
        : suspects is { Count: > 0 } ? $"round aborted at {stage}: parties {string.Join(',', suspects.Distinct().Order())} suspected: {reason}"
        : $"round aborted at {stage}: {reason}";
}
