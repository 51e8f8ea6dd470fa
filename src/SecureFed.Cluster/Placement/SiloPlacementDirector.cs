using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace SecureFed.Cluster.Placement;

/// <summary>
/// Chooses the silo whose address (<c>ToParsableString()</c>) is the grain's key; refuses a key that names no active
/// silo, so a probe never reports another silo's figures.
/// </summary>
internal sealed class SiloPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        string key = target.GrainIdentity.Key.ToString()!;
        SiloAddress? silo = context.GetCompatibleSilos(target).FirstOrDefault(s => string.Equals(s.ToParsableString(), key, StringComparison.Ordinal));
        return silo is not null
            ? Task.FromResult(silo)
            : throw new InvalidOperationException($"no active silo has the address '{key}'");
    }
}
