namespace SecureFed.Cluster.Tests;

/// <summary>
/// <see cref="ThreeSiloCluster"/> for a test that kills a silo: it is declared dead within a few seconds (1 s probes,
/// 2 missed, 1 vote). Only such a test uses it, since a silo starved that long on a loaded machine is declared dead too.
/// </summary>
public sealed class KillableThreeSiloCluster : ThreeSiloCluster
{
    protected override bool FastFailureDetection => true;
}
