using Orleans.Runtime;

namespace SecureFed.Cluster.Placement;

/// <summary>Places slice k of a round on the k-th active silo (mod their number), so that the slices spread evenly.</summary>
[GenerateSerializer]
[Alias("securefed.SlicePlacementStrategy")]
[Immutable]
public sealed class SlicePlacementStrategy : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static SlicePlacementStrategy Instance { get; } = new();
}
