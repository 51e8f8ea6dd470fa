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
}
