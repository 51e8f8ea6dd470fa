namespace SecureFed.Aggregator.Persistence;

/// <summary>The state of a persisted round.</summary>
public enum RoundStatus
{
    /// <summary>Started and neither completed nor aborted (after a restart: interrupted).</summary>
    Running,

    /// <summary>Completed; a model was fused.</summary>
    Completed,

    /// <summary>Aborted (too many dropouts, timeout, protocol violation, or interrupted by a restart).</summary>
    Aborted,
}
