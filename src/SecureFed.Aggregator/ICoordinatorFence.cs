namespace SecureFed.Aggregator;

/// <summary>
/// Whether this process may still drive the federation's rounds. The single-process aggregator always may
/// (<see cref="CoordinatorFence.Always"/>); on the aggregator cluster the coordinator silo may only while it holds the
/// coordinator lease in the cluster's database (docs/cluster.md §6, "The coordinator lease").
/// </summary>
public interface ICoordinatorFence
{
    /// <summary>Cancelled when the lease is lost (never, for the single process).</summary>
    CancellationToken Lost { get; }

    /// <summary>The lease's epoch (fencing token) this process holds; 0 for the single process.</summary>
    long Epoch { get; }

    /// <summary>
    /// The lease epoch of the coordinator whose saved state this process took over (the epoch that last saved the round
    /// store), to name it when a round it left open is aborted; 0 when unknown or none (the single process, a first
    /// coordinator).
    /// </summary>
    long PreviousEpoch => 0;

    /// <summary>Throws when this process may no longer drive rounds; called before every durable write of a round.</summary>
    /// <exception cref="CoordinatorLeaseLostException">The lease is lost or expired locally.</exception>
    void EnsureHeld();

    /// <summary>
    /// Called at each commit point of the coordinator (start-up, a round opened, its consistency stage closed before the
    /// unmasking request is released, a round completed or aborted), after its local
    /// state is written: makes that state durable where another coordinator can take it over (the cluster's database,
    /// fenced by <see cref="Epoch"/>); nothing for the single process. Agents are told a round completed only after
    /// this returned.
    /// </summary>
    /// <exception cref="CoordinatorLeaseLostException">The write was refused: another silo holds the lease.</exception>
    Task CommitAsync(AggregatorState state, CancellationToken cancellationToken);

    /// <summary>
    /// Called at each stage close of a round, after the stage's audit lines are written and before the next stage
    /// starts: makes the audit lines written since the last save durable where another coordinator can take them over
    /// (the cluster's database, appended under <see cref="Epoch"/>, only the new lines); nothing for the single process.
    /// </summary>
    /// <exception cref="CoordinatorLeaseLostException">The write was refused: another silo holds the lease.</exception>
    Task SaveAuditAsync(AggregatorState state, CancellationToken cancellationToken);
}
