namespace SecureFed.Cluster.Lease;

/// <summary>What the holder of a coordinator lease does next (<see cref="LeaseRules.Next"/>).</summary>
public enum LeaseStep
{
    /// <summary>The lease is fresh: keep driving rounds, renew later.</summary>
    Hold,

    /// <summary>Time to renew (or to retry a renewal that failed): keep driving rounds meanwhile.</summary>
    Renew,

    /// <summary>The lease may have expired: stop driving rounds now.</summary>
    Lost,
}
