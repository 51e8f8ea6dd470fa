using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>The data of one experiment: the sites' training sets, the dev set (per-round curves, tuning) and the held-out test set.</summary>
/// <param name="Sites">The sites, in order.</param>
/// <param name="Dev">Dev sentences (all corpora).</param>
/// <param name="Test">Held-out test sentences (all corpora).</param>
/// <param name="EntityTypes">The union of the sites' entity types (the shared label set).</param>
/// <param name="Description">One line saying what was split how.</param>
public sealed record ExperimentData(IReadOnlyList<SiteData> Sites, IReadOnlyList<Sentence> Dev, IReadOnlyList<Sentence> Test, IReadOnlyList<string> EntityTypes, string Description)
{
    /// <summary>Every site's training sentences together (the pooled arm, which no hospital may run).</summary>
    public IReadOnlyList<Sentence> Pooled => [.. Sites.SelectMany(s => s.Train)];
}
