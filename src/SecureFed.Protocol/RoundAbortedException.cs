namespace SecureFed.Protocol;

/// <summary>The round cannot go on (fewer than t parties left at some stage); nothing further is revealed.</summary>
public sealed class RoundAbortedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RoundAbortedException(ProtocolStage stage, string reason)
        : base($"round aborted at {stage}: {reason}")
    {
        Stage = stage;
        Reason = reason;
    }

    /// <summary>The stage at which the round was aborted.</summary>
    public ProtocolStage Stage { get; }

    /// <summary>Why.</summary>
    public string Reason { get; }
}
