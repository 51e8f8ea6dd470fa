using Grpc.Core;
namespace SecureFed.Agent;

/// <summary>
/// The aggregator answered a call with a status the agent has no way to wait out (NOT_FOUND, UNIMPLEMENTED, ...: an
/// endpoint that is not a SecureFed aggregator of this version, or a hostile one). The agent stops (exit code 1) with one
/// line naming the call, the aggregator's status and its detail; before, the RpcException stopped the host with a stack trace.
/// </summary>
public sealed class AggregatorUnexpectedStatusException : Exception
{
    /// <summary>Creates the exception from the aggregator's answer to <paramref name="call"/>.</summary>
    public AggregatorUnexpectedStatusException(string endpoint, string call, RpcException inner)
        : base($"the aggregator at {endpoint} answered {call} with status {inner?.StatusCode} ({Detail(inner)}), which the agent cannot wait out; check that SecureFed:Aggregator names this federation's aggregator and that it runs a matching SecureFed version", inner)
    {
        StatusCode = inner?.StatusCode ?? Grpc.Core.StatusCode.Unknown;
    }

    /// <summary>The aggregator's status.</summary>
    public StatusCode StatusCode { get; }

    /// <summary>The aggregator's detail text, bounded (it is the aggregator's text, shown in this site's log).</summary>
    private static string Detail(RpcException? inner)
        => inner is null || string.IsNullOrWhiteSpace(inner.Status.Detail) ? "no detail" : "detail: " + AggregatorText.ForLog(inner.Status.Detail);
}
