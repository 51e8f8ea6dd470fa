namespace SecureFed.Protocol;

/// <summary>
/// The federation's score of a model in one round, decoded from the secure sum of the sites' counts: nobody learns
/// a single site's counts, only these totals.
/// </summary>
/// <param name="Evaluators">How many contributors put counts into the sum (a site without dev data, or that opted out, puts zeros and is not counted).</param>
/// <param name="Overall">Summed counts over all chunks.</param>
/// <param name="PerType">Summed counts per announced entity type, in the layout's order.</param>
public sealed record FederatedEvaluation(int Evaluators, EntityCounts Overall, IReadOnlyDictionary<string, EntityCounts> PerType)
{
    /// <summary>The federation's overall F1.</summary>
    public double F1 => Overall.F1;
}
