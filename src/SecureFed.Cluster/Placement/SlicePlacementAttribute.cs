using Orleans.Placement;

namespace SecureFed.Cluster.Placement;

/// <summary>Marks a grain placed by <see cref="SlicePlacementStrategy"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SlicePlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public SlicePlacementAttribute()
        : base(SlicePlacementStrategy.Instance)
    {
    }
}
