namespace SecureFed.Protocol;

/// <summary>
/// One site's score of a model on its own dev data, as counts: overall (every chunk, of any type) and per entity
/// type. It never leaves the site in the clear: <see cref="EvaluationLayout.Encode"/> puts it into the site's
/// secure-aggregation input, so the aggregator learns only the sum over the round's contributors.
/// </summary>
/// <param name="Overall">Counts over all chunks.</param>
/// <param name="PerType">Counts per entity type (types absent here count as zero).</param>
public sealed record EvaluationCounts(EntityCounts Overall, IReadOnlyDictionary<string, EntityCounts> PerType);
