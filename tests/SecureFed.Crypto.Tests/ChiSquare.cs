namespace SecureFed.Crypto.Tests;

/// <summary>Pearson chi-square helpers for the uniformity and independence tests.</summary>
internal static class ChiSquare
{
    /// <summary>Statistic of <paramref name="counts"/> against the uniform distribution over its bins.</summary>
    public static double AgainstUniform(IReadOnlyList<long> counts)
    {
        double total = counts.Sum();
        double expected = total / counts.Count;
        return counts.Sum(c => (c - expected) * (c - expected) / expected);
    }

    /// <summary>Statistic of the homogeneity test for two histograms over the same bins (df = bins - 1).</summary>
    public static double Homogeneity(IReadOnlyList<long> a, IReadOnlyList<long> b)
    {
        double totalA = a.Sum();
        double totalB = b.Sum();
        double total = totalA + totalB;
        double statistic = 0;
        for (int i = 0; i < a.Count; i++)
        {
            double column = a[i] + b[i];
            double expectedA = column * totalA / total;
            double expectedB = column * totalB / total;
            statistic += ((a[i] - expectedA) * (a[i] - expectedA) / expectedA) + ((b[i] - expectedB) * (b[i] - expectedB) / expectedB);
        }

        return statistic;
    }

    /// <summary>
    /// Upper critical value for <paramref name="degreesOfFreedom"/> at p ~ 1e-5 (Wilson-Hilferty approximation), so a
    /// correct implementation fails about once in 100 000 seeds, while a biased one fails reliably.
    /// </summary>
    public static double Critical(int degreesOfFreedom)
    {
        const double Z = 4.265; // upper 1e-5 quantile of N(0, 1)
        double k = degreesOfFreedom;
        double term = 1 - (2 / (9 * k)) + (Z * Math.Sqrt(2 / (9 * k)));
        return k * term * term * term;
    }
}
