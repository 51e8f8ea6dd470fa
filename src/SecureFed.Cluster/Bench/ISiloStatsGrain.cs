namespace SecureFed.Cluster.Bench;

/// <summary>
/// Reports the resource figures of the silo process it lives on. Keyed by the silo's address
/// (<c>SiloAddress.ToParsableString()</c>); <see cref="Placement.SiloPlacementDirector"/> activates it on that silo.
/// </summary>
[Alias("securefed.ISiloStatsGrain")]
public interface ISiloStatsGrain : IGrainWithStringKey
{
    /// <summary>The figures now.</summary>
    [Alias("Stats")]
    Task<SiloStats> StatsAsync();
}
