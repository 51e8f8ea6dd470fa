namespace SecureFed.Cli.Commands;

/// <summary>Where <c>bench cluster --front grpc</c> points the agents on the cluster side (<c>--agents-via</c>).</summary>
internal enum ClusterBenchAgentsVia
{
    /// <summary>Every agent is given the coordinator silo's endpoint: control calls go to it directly.</summary>
    Coordinator,

    /// <summary>
    /// Every agent is given one slice silo's endpoint only (site i the (i mod (S − 1))-th): that silo forwards every control
    /// call and download to the coordinator (docs/cluster.md §6, "Every silo a front"); slices still go to the announced
    /// endpoints.
    /// </summary>
    Front,
}
