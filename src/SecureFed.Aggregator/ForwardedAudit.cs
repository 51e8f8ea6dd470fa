using SecureFed.Audit;

namespace SecureFed.Aggregator;

/// <summary>
/// The audit side of a forwarded call (docs/cluster.md §6, "Every silo a front"): every audit line that names a site and
/// that the coordinator's <see cref="AggregationService"/> writes while serving a call another silo of the aggregator
/// cluster forwarded also names that silo, in a <c>via</c> field. An auditor can then tell which silo vouched for the
/// site's identity (the coordinator itself saw only the aggregator's certificate). The value is the forwarding silo's own
/// name from <see cref="ForwardedIdentity.SiloHeader"/>, trusted only because <see cref="ForwardedIdentity.Decide"/>
/// accepted the call (it came with the aggregator's own certificate); a call straight from a site has no <c>via</c>.
/// </summary>
internal static class ForwardedAudit
{
    private static readonly AsyncLocal<string?> ForwardedBy = new();

    /// <summary>The silo that forwarded the call being served, or null when the site called directly.</summary>
    public static string? Via => ForwardedBy.Value;

    /// <summary>
    /// Records, for the rest of the call being served, the silo that forwarded it (null: the site called directly).
    /// Called synchronously from the call's handler, so the value flows into everything that handler awaits and ends
    /// with it; another call never sees it.
    /// </summary>
    public static void Begin(string? forwardedBy) => ForwardedBy.Value = forwardedBy;

    /// <summary>Adds <c>site</c> and, for a forwarded call, <c>via</c> (the forwarding silo).</summary>
    public static AuditFields AddSite(this AuditFields fields, string site)
    {
        ArgumentNullException.ThrowIfNull(fields);
        fields.Add("site", site);
        return ForwardedBy.Value is string via ? fields.Add("via", via) : fields;
    }
}
