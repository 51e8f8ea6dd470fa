namespace SecureFed.Protocol;

/// <summary>
/// Which masking graphs a federation uses (aggregator setting <c>Graph</c>) or a site accepts (agent setting
/// <c>Graph</c>); docs/PROTOCOL.md "Masking graph" and the threat model say what each one guarantees.
/// </summary>
public enum GraphPolicy
{
    /// <summary>
    /// The complete graph with the honest-majority threshold t = ⌊n/2⌋ + 1 for cohorts up to
    /// <see cref="GraphPlanner.CompleteGraphLimit"/> sites (a deterministic guarantee: fewer than t corrupt sites
    /// learn nothing, whatever the aggregator does); the SecAgg+ Harary graph only above that size.
    /// </summary>
    Complete,

    /// <summary>
    /// The SecAgg+ Harary graph for any cohort size wherever the planner's bounds find a degree k &lt; n − 1
    /// (a statistical guarantee under an assumed corrupt fraction γ, see <see cref="GraphPlanner"/>); the complete
    /// graph otherwise.
    /// </summary>
    Sparse,
}
