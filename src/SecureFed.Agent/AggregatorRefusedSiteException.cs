using Grpc.Core;

namespace SecureFed.Agent;

/// <summary>
/// The aggregator refused this site (<see cref="StatusCode.PermissionDenied"/>: revoked, excluded, or not in its
/// manifest). Waiting would not change that, so the agent stops (exit code 1) with one line saying so.
/// </summary>
public sealed class AggregatorRefusedSiteException : Exception
{
    /// <summary>Creates the exception from the aggregator's answer.</summary>
    public AggregatorRefusedSiteException(string site, RpcException inner)
        : base($"the aggregator refused site '{site}': {Reason(inner)}; ask the federation administrator (a revoked or excluded site stays refused until they change that)", inner)
    {
        Site = site;
    }

    /// <summary>The refused site.</summary>
    public string Site { get; }

    private static string Reason(RpcException? inner)
        => inner is null || string.IsNullOrWhiteSpace(inner.Status.Detail) ? "permission denied" : AggregatorText.ForLog(inner.Status.Detail);
}
