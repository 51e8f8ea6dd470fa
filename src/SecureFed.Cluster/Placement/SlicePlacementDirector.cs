using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace SecureFed.Cluster.Placement;

/// <summary>
/// Chooses the silo for a slice grain: the compatible silos in a stable order (by address), the slice index modulo their
/// number. Every silo computes the same choice, so slice k of every round lands on the same silo while membership is
/// unchanged; a key without a slice index goes to the first silo.
/// </summary>
internal sealed class SlicePlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        SiloAddress[] silos = [.. context.GetCompatibleSilos(target).OrderBy(s => s.ToParsableString(), StringComparer.Ordinal)];
        int slice = Math.Max(0, ClusterKeys.SliceIndex(target.GrainIdentity.Key.ToString()));
        return Task.FromResult(silos[slice % silos.Length]);
    }
}
