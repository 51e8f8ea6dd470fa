using Orleans.Runtime;

namespace SecureFed.Cluster.Placement;

/// <summary>Places a grain keyed by a silo's address on that silo (per-silo probes such as <see cref="Bench.ISiloStatsGrain"/>).</summary>
[GenerateSerializer]
[Alias("securefed.SiloPlacementStrategy")]
[Immutable]
public sealed class SiloPlacementStrategy : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static SiloPlacementStrategy Instance { get; } = new();
}
