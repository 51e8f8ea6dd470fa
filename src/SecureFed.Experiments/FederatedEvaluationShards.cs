using SecureFed.Protocol;
using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>
/// Federated evaluation in the in-process runner: the dev set dealt round-robin into one shard per site (each site's
/// own dev data), each site's conlleval counts of the model it received, and the announced per-site cap.
/// </summary>
internal static class FederatedEvaluationShards
{
    /// <summary>Sentence k goes to site k mod n.</summary>
    public static IReadOnlyList<Sentence>[] Split(IReadOnlyList<Sentence> dev, int sites) =>
        [.. Enumerable.Range(0, sites).Select(i => (IReadOnlyList<Sentence>)[.. dev.Where((_, k) => k % sites == i)])];

    /// <summary>The largest shard's token count (no count of a shard can exceed its tokens), at least 1.</summary>
    public static int CountCap(IReadOnlyList<Sentence>[] shards) => Math.Max(1, shards.Max(s => s.Sum(x => x.Tokens.Count)));

    /// <summary>A site's TP/FP/FN counts of <paramref name="model"/> on its shard; null when the shard is empty.</summary>
    public static EvaluationCounts? Score(TaggerModel model, IReadOnlyList<Sentence> shard)
    {
        if (shard.Count == 0)
        {
            return null;
        }

        EvaluationResult result = TaggerEvaluator.Evaluate(model, shard);
        return new EvaluationCounts(Of(result.Overall), result.PerType.ToDictionary(t => t.Key, t => Of(t.Value), StringComparer.Ordinal));

        static EntityCounts Of(EntityScore s) => new(s.TruePositives, s.Predicted - s.TruePositives, s.Gold - s.TruePositives);
    }
}
