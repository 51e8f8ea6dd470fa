namespace SecureFed.Audit.Internal;

/// <summary>How a round ended, as its aggregator logged it.</summary>
internal enum RoundState
{
    /// <summary>Opened, but neither completed nor aborted in the log.</summary>
    Open,

    /// <summary>round.completed was logged.</summary>
    Completed,

    /// <summary>round.aborted was logged.</summary>
    Aborted,
}
