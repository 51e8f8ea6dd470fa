namespace SecureFed.Cluster.Lease;

/// <summary>One federation's row of the coordinator lease table, as read from the database.</summary>
/// <param name="Federation">The federation (the cluster id).</param>
/// <param name="Holder">The silo that holds or last held the lease (its Orleans address with generation).</param>
/// <param name="Epoch">The fencing token: one more on every acquisition by any silo, never reused.</param>
/// <param name="ExpiresUtc">The database time after which any silo may take the lease.</param>
/// <param name="AgentEndpoint">The https:// URL where the holder serves agents (recorded when it acquired the lease), or empty.</param>
public sealed record CoordinatorLeaseRecord(string Federation, string Holder, long Epoch, DateTimeOffset ExpiresUtc, string AgentEndpoint = "");
