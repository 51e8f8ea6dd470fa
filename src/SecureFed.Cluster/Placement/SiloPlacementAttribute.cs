using Orleans.Placement;

namespace SecureFed.Cluster.Placement;

/// <summary>Marks a grain placed by <see cref="SiloPlacementStrategy"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloPlacementAttribute : PlacementAttribute
{
    /// <summary>Creates the attribute.</summary>
    public SiloPlacementAttribute()
        : base(SiloPlacementStrategy.Instance)
    {
    }
}
