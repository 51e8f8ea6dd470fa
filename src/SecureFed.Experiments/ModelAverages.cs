namespace SecureFed.Experiments;

/// <summary>
/// Averages of the global models of a run (iterate averaging): post-processing of the released models, so they cost no
/// privacy. <see cref="Tail"/> is Polyak–Ruppert averaging over the last rounds, <see cref="Ema"/> an exponential moving
/// average with Adam's bias correction (no warm-up schedule, so a decay of 0.99 averages over about 100 rounds from the
/// first round on).
/// </summary>
internal static class ModelAverages
{
    /// <summary>The uniform mean of <paramref name="models"/>[from − 1 ..] (the global models after rounds <paramref name="from"/> to the last).</summary>
    /// <param name="models">The global model after each round, round 1 first.</param>
    /// <param name="from">The first round averaged (1-based).</param>
    public static float[] Tail(IReadOnlyList<float[]> models, int from)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentOutOfRangeException.ThrowIfLessThan(from, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(from, models.Count);
        var sum = new double[models[0].Length];
        for (int r = from - 1; r < models.Count; r++)
        {
            float[] m = models[r];
            for (int j = 0; j < sum.Length; j++)
            {
                sum[j] += m[j];
            }
        }

        int count = models.Count - from + 1;
        return [.. sum.Select(s => (float)(s / count))];
    }

    /// <summary>
    /// The bias-corrected exponential moving average after the last round: m_t = β m_{t−1} + (1 − β) x_t from m_0 = 0,
    /// divided by 1 − β^t, i.e. Σ β^(t−s) x_s / Σ β^(t−s).
    /// </summary>
    /// <param name="models">The global model after each round, round 1 first.</param>
    /// <param name="decay">β in [0, 1).</param>
    public static float[] Ema(IReadOnlyList<float[]> models, double decay)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentOutOfRangeException.ThrowIfZero(models.Count);
        if (!(decay >= 0 && decay < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(decay), decay, "The decay must be in [0, 1).");
        }

        var m = new double[models[0].Length];
        foreach (float[] x in models)
        {
            for (int j = 0; j < m.Length; j++)
            {
                m[j] = (decay * m[j]) + ((1 - decay) * x[j]);
            }
        }

        double correction = 1 - Math.Pow(decay, models.Count);
        return [.. m.Select(v => (float)(v / correction))];
    }

    /// <summary>
    /// Running uniform mean of the global models from a given round on (<see cref="ExperimentOptions.ServerAverageFrom"/>),
    /// so a run need not keep every round's model.
    /// </summary>
    internal sealed class TailAccumulator(int from)
    {
        private double[]? _sum;
        private int _count;

        /// <summary>Adds the global model after <paramref name="round"/>; returns the mean so far, or null before the first averaged round.</summary>
        public float[]? Add(int round, float[] global)
        {
            ArgumentNullException.ThrowIfNull(global);
            if (round < from)
            {
                return null;
            }

            _sum ??= new double[global.Length];
            for (int j = 0; j < global.Length; j++)
            {
                _sum[j] += global[j];
            }

            _count++;
            var mean = new float[global.Length];
            for (int j = 0; j < mean.Length; j++)
            {
                mean[j] = (float)(_sum[j] / _count);
            }

            return mean;
        }
    }
}
