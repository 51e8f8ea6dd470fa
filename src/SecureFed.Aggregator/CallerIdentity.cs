using Grpc.Core;

namespace SecureFed.Aggregator;

/// <summary>
/// Who an agent-facing call comes from (<see cref="ForwardedIdentity.Decide"/>): the site, and the silo that forwarded
/// the call if another silo of the aggregator cluster did; or the refusal (status, reason label, reason).
/// </summary>
/// <param name="Caller">The name the call is logged and audited under: the site, or a description of the certificate when refused.</param>
/// <param name="Site">The authenticated site, or null when refused.</param>
/// <param name="ForwardedBy">The forwarding silo (its own name in the header), or null for a call straight from the site.</param>
/// <param name="Code">The refusal's status (<see cref="StatusCode.OK"/> when admitted).</param>
/// <param name="Category">The refusal's low-cardinality label, or null.</param>
/// <param name="Reason">The refusal's reason, or null.</param>
public sealed record CallerIdentity(string Caller, string? Site, string? ForwardedBy, StatusCode Code, string? Category, string? Reason)
{
    /// <summary>True when the call is refused.</summary>
    public bool Refused => Site is null;
}
