namespace SecureFed.Aggregator.Operations;

/// <summary>How a round attempt ended, as the console shows it.</summary>
internal enum RoundOutcomeKind
{
    /// <summary>Still open.</summary>
    Running,

    /// <summary>Produced a model version.</summary>
    Completed,

    /// <summary>Aborted.</summary>
    Aborted,
}
