using SecureFed.Aggregator;

namespace SecureFed.Cluster.Lease;

/// <summary>The round-affecting settings a coordinator saved in the cluster's database, with the lease epoch that saved them.</summary>
/// <param name="Epoch">The lease epoch of the coordinator that saved them.</param>
/// <param name="Settings">The settings.</param>
public sealed record SavedRoundSettings(long Epoch, RoundSettings Settings);
