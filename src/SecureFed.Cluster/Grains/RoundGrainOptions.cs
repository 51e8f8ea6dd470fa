namespace SecureFed.Cluster.Grains;

/// <summary>How long a round grain stays after its round ended (a silo singleton; docs/cluster.md §2).</summary>
public sealed class RoundGrainOptions
{
    /// <summary>
    /// How long the activation of a round that completed or aborted stays, answering late calls with the round's outcome
    /// (its <c>ServerRound</c> is released at once when the round ends; this keeps only the outcome, the layout and the
    /// spec): then it is deactivated, whatever calls it gets, and a later call finds a new activation without a round.
    /// Longer than the coordinator's work after the unmasking (reading the sum, the next model), so its own abort of a round
    /// it could not complete still reaches the grain that knows the round.
    /// <value>The default value is 2 minutes.</value>
    /// </summary>
    public TimeSpan KeptAfterEnd { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How long an open round's grains (its round grain and its slice grains) are kept from Orleans' idle-activation
    /// collector (<c>Grain.DelayDeactivation</c> at their opening). A slice gets no call between the round's opening and its
    /// first masked-input upload (the training, the keys and the shares), and Orleans deactivates an activation idle for its
    /// collection age (15 minutes by default): before, an idle open slice lost its state with its activation and the round
    /// aborted at the first upload, after the honest sites had charged their record-level budget. The grains of a round that
    /// ends are deactivated explicitly (the round grain <see cref="KeptAfterEnd"/> later, a slice once its sum was read or the
    /// round aborted), which ends the delay; this bound only frees the grains of a round whose coordinator died.
    /// <value>The default value is 30 hours: longer than the longest round the aggregator's settings allow
    /// (TrainingTimeoutSeconds at most 24 hours, then four stages of at most StageTimeoutSeconds = 1 hour each).</value>
    /// </summary>
    public TimeSpan KeptWhileOpen { get; init; } = TimeSpan.FromHours(30);
}
