using SecureFed.Cluster.Lease;

namespace SecureFed.Cluster.Front;

/// <summary>
/// Where the current coordinator serves agents, for a silo that forwards agents' control calls to it (docs/cluster.md
/// §6, "Every silo a front"): the lease row's holder, epoch and agent endpoint.
/// </summary>
public interface ICoordinatorLocator
{
    /// <summary>The current lease row (possibly a briefly cached copy), or null when no silo ever took the lease.</summary>
    Task<CoordinatorLeaseRecord?> LocateAsync(CancellationToken cancellationToken);

    /// <summary>Drops a cached copy of <paramref name="stale"/> (its coordinator could not be reached): the next call reads the database.</summary>
    void Forget(CoordinatorLeaseRecord stale);
}
