using System.Diagnostics;
using SecureFed.Tagger;

namespace SecureFed.Cli.Demo;

/// <summary>
/// "Was it worth it": the comparisons printed after the federation, trained in this process one model at a time
/// (never in parallel threads) with the same model configuration and the same number of local epochs in total as a
/// site spent in the federation, without DP (a site alone shares nothing, so it needs none).
/// </summary>
internal static class DemoBaselines
{
    /// <summary>The local training recipe without DP: Adam at the product recipe's lr (0.01), batches of 32, the tagger's usual gradient clip.</summary>
    public static TrainOptions PlainOptions(int epochs, int seed) => new()
    {
        Epochs = epochs,
        LearningRate = Experiments.TrainingRecipe.Product.LearningRate,
        BatchSize = 32,
        Seed = seed,
        Optimizer = TaggerOptimizer.Adam,
        Patience = int.MaxValue,
        Threads = 0,
    };

    /// <summary>Each site trained alone on its own data for <paramref name="epochs"/> epochs, scored on the test set.</summary>
    public static IReadOnlyList<(string Site, double TestF1)> SiteAlone(Agent.ModelSpec spec, IReadOnlyList<string> sites, IReadOnlyDictionary<string, IReadOnlyList<Sentence>> train, IReadOnlyList<Sentence> test, int epochs, int seed, CancellationToken cancellationToken)
    {
        var result = new List<(string, double)>();
        for (int i = 0; i < sites.Count; i++)
        {
            using TaggerModel model = TaggerModel.Create(spec.Config, spec.Labels, seed, "cpu");
            new TaggerTrainer().Train(model, train[sites[i]], null, PlainOptions(epochs, seed + i), null, cancellationToken);
            result.Add((sites[i], TaggerEvaluator.Evaluate(model, test).F1));
        }

        return result;
    }

    /// <summary>
    /// The same federation without any DP: <paramref name="rounds"/> rounds of federated averaging (weights by
    /// example count, as the aggregator does), each site <paramref name="localEpochs"/> local epochs per round.
    /// Secure aggregation is exact, so the plain average here is what it would reconstruct.
    /// </summary>
    public static double FederatedWithoutDp(Agent.ModelSpec spec, float[] initial, IReadOnlyList<string> sites, IReadOnlyDictionary<string, IReadOnlyList<Sentence>> train, IReadOnlyList<Sentence> test, int rounds, int localEpochs, int seed, CancellationToken cancellationToken)
    {
        float[] global = (float[])initial.Clone();
        using TaggerModel model = TaggerModel.Create(spec.Config, spec.Labels, seed, "cpu");
        double totalWeight = sites.Sum(s => (double)train[s].Count);
        for (int round = 1; round <= rounds; round++)
        {
            double[] sum = new double[global.Length];
            for (int i = 0; i < sites.Count; i++)
            {
                model.Unflatten(global);
                new TaggerTrainer().Train(model, train[sites[i]], null, PlainOptions(localEpochs, seed + (round * 31) + i), null, cancellationToken);
                float[] local = model.Flatten();
                double weight = train[sites[i]].Count / totalWeight;
                for (int k = 0; k < sum.Length; k++)
                {
                    sum[k] += weight * (local[k] - global[k]);
                }
            }

            for (int k = 0; k < global.Length; k++)
            {
                global[k] += (float)sum[k];
            }
        }

        model.Unflatten(global);
        return TaggerEvaluator.Evaluate(model, test).F1;
    }

    /// <summary>Runs <paramref name="work"/> and returns its result and wall time.</summary>
    public static (T Result, TimeSpan Elapsed) Timed<T>(Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var watch = Stopwatch.StartNew();
        T result = work();
        return (result, watch.Elapsed);
    }
}
