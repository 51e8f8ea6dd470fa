namespace SecureFed.Aggregator.Operations;

/// <summary>A cohort member's state in a round, as the console shows it.</summary>
internal enum SiteState
{
    /// <summary>In the round; has not delivered the open stage's message yet (deadline not passed).</summary>
    Waiting,

    /// <summary>Delivered the open stage's message.</summary>
    Delivered,

    /// <summary>The open stage's deadline passed and its message has not arrived.</summary>
    Late,

    /// <summary>Did not deliver a stage before it closed; out of the round.</summary>
    Dropped,

    /// <summary>Declined the round, giving a reason.</summary>
    Declined,

    /// <summary>Its update is in the completed round's model.</summary>
    Contributed,
}
