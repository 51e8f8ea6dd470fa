using SecureFed.Protocol;
using SecureFed.Tagger;

namespace SecureFed.Agent;

/// <summary>
/// A site's side of federated evaluation (docs/PROTOCOL.md, "Federated evaluation"): the conlleval counts of a model on
/// the site's dev data, within the announced per-site cap. The counts go into the masked input only.
/// </summary>
public static class DevEvaluation
{
    /// <summary>The TP/FP/FN counts of a conlleval result, overall and per type.</summary>
    public static EvaluationCounts Counts(EvaluationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        return new EvaluationCounts(Of(result.Overall), result.PerType.ToDictionary(t => t.Key, t => Of(t.Value), StringComparer.Ordinal));
    }

    /// <summary>
    /// The longest prefix of <paramref name="dev"/> with at most <paramref name="countCap"/> tokens: no entity count of
    /// it (gold or predicted chunks, hence TP, FP, FN) can exceed the cap, so nothing is clamped.
    /// </summary>
    public static IReadOnlyList<Sentence> WithinCap(IReadOnlyList<Sentence> dev, int countCap)
    {
        ArgumentNullException.ThrowIfNull(dev);
        ArgumentOutOfRangeException.ThrowIfLessThan(countCap, 1);
        long tokens = 0;
        int take = 0;
        while (take < dev.Count && tokens + dev[take].Tokens.Count <= countCap)
        {
            tokens += dev[take].Tokens.Count;
            take++;
        }

        return take == dev.Count ? dev : [.. dev.Take(take)];
    }

    /// <summary>
    /// Scores <paramref name="model"/> on <paramref name="dev"/> for federated evaluation: the counts of the whole set
    /// when they fit <paramref name="countCap"/>, else of its longest prefix that does; null when there is nothing to
    /// score. Also returns the F1 of the whole set (the site's own, local figure). <paramref name="cancellationToken"/> stops
    /// the pretrained encoder's features between sentences (<see cref="TaggerModel.Predict"/>).
    /// </summary>
    public static (EvaluationCounts? Counts, double DevF1) Score(TaggerModel model, IReadOnlyList<Sentence> dev, int countCap, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(dev);
        if (dev.Count == 0)
        {
            return (null, double.NaN);
        }

        EvaluationResult whole = TaggerEvaluator.Evaluate(model, dev, cancellationToken);
        if (countCap <= 0)
        {
            return (null, whole.F1);
        }

        EvaluationCounts counts = Counts(whole);
        if (Fits(counts, countCap))
        {
            return (counts, whole.F1);
        }

        IReadOnlyList<Sentence> prefix = WithinCap(dev, countCap);
        return (prefix.Count == 0 ? null : Counts(TaggerEvaluator.Evaluate(model, prefix, cancellationToken)), whole.F1);
    }

    private static bool Fits(EvaluationCounts counts, int cap) =>
        counts.PerType.Values.Append(counts.Overall).All(c => c.TruePositives <= cap && c.FalsePositives <= cap && c.FalseNegatives <= cap);

    private static EntityCounts Of(EntityScore score) => new(score.TruePositives, score.Predicted - score.TruePositives, score.Gold - score.TruePositives);
}
