using System.Diagnostics;
using SecureFed.Tagger.Internal;

namespace SecureFed.Tagger;

/// <summary>
/// Entity-level exact-match evaluation with conlleval semantics: a chunk starts at B-X, or at I-X after O or after a
/// different type; a predicted chunk counts only if its span and type equal a gold chunk.
/// </summary>
public static class TaggerEvaluator
{
    /// <summary>Predicts with <paramref name="model"/> and scores against the gold tags.</summary>
    /// <param name="model">The tagger.</param>
    /// <param name="sentences">Gold sentences.</param>
    /// <param name="cancellationToken">Stops the pretrained encoder's features (<see cref="TaggerConfig.Encoder"/>) between sentences.</param>
    /// <returns>Scores plus inference tokens/s.</returns>
    public static EvaluationResult Evaluate(TaggerModel model, IReadOnlyList<Sentence> sentences, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sentences);
        var watch = Stopwatch.StartNew();
        IReadOnlyList<IReadOnlyList<string>> predicted = model.Predict([.. sentences.Select(s => s.Tokens)], cancellationToken);
        double seconds = watch.Elapsed.TotalSeconds;
        EvaluationResult result = Score(sentences, predicted);
        return result with { TokensPerSecond = seconds > 0 ? result.Tokens / seconds : 0 };
    }

    /// <summary>Scores predicted tags against gold tags.</summary>
    /// <param name="gold">Gold sentences.</param>
    /// <param name="predicted">Predicted tags, one list per gold sentence.</param>
    /// <returns>The scores.</returns>
    /// <exception cref="ArgumentException">Counts or lengths differ.</exception>
    public static EvaluationResult Score(IReadOnlyList<Sentence> gold, IReadOnlyList<IReadOnlyList<string>> predicted)
    {
        ArgumentNullException.ThrowIfNull(gold);
        ArgumentNullException.ThrowIfNull(predicted);
        if (gold.Count != predicted.Count)
        {
            throw new ArgumentException($"predicted has {predicted.Count} sentences but gold has {gold.Count}", nameof(predicted));
        }

        var tp = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var goldCount = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var predCount = new SortedDictionary<string, int>(StringComparer.Ordinal);
        long tokens = 0;
        long correctTokens = 0;
        for (int s = 0; s < gold.Count; s++)
        {
            IReadOnlyList<string> g = gold[s].Tags;
            IReadOnlyList<string> p = predicted[s];
            if (g.Count != p.Count)
            {
                throw new ArgumentException($"sentence {s}: {p.Count} predicted tags for {g.Count} gold tags", nameof(predicted));
            }

            tokens += g.Count;
            for (int i = 0; i < g.Count; i++)
            {
                if (string.Equals(g[i], p[i], StringComparison.Ordinal))
                {
                    correctTokens++;
                }
            }

            var goldChunks = Iob.Chunks(g);
            var predChunks = Iob.Chunks(p);
            var goldSet = new HashSet<(int, int, string)>(goldChunks);
            foreach (var chunk in goldChunks)
            {
                Increment(goldCount, chunk.Type);
            }

            foreach (var chunk in predChunks)
            {
                Increment(predCount, chunk.Type);
                if (goldSet.Contains(chunk))
                {
                    Increment(tp, chunk.Type);
                }
            }
        }

        var perType = new SortedDictionary<string, EntityScore>(StringComparer.Ordinal);
        foreach (string type in goldCount.Keys.Union(predCount.Keys))
        {
            perType[type] = new EntityScore(tp.GetValueOrDefault(type), goldCount.GetValueOrDefault(type), predCount.GetValueOrDefault(type));
        }

        return new EvaluationResult
        {
            Overall = new EntityScore(tp.Values.Sum(), goldCount.Values.Sum(), predCount.Values.Sum()),
            PerType = perType,
            Sentences = gold.Count,
            Tokens = tokens,
            TokenAccuracy = tokens == 0 ? 0 : (double)correctTokens / tokens,
        };
    }

    private static void Increment(SortedDictionary<string, int> counts, string key) =>
        counts[key] = counts.GetValueOrDefault(key) + 1;
}
