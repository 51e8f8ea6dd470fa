namespace SecureFed.Cli.Commands;

/// <summary>Summary statistics shared by the <c>securefed bench</c> commands.</summary>
internal static class BenchStatistics
{
    /// <summary>
    /// The median of <paramref name="samples"/> (the mean of the two middle values for an even count), without
    /// reordering the caller's collection.
    /// </summary>
    /// <exception cref="ArgumentException">There are no samples, or one is NaN.</exception>
    public static double Median(IEnumerable<double> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        double[] sorted = [.. samples];
        if (sorted.Length == 0)
        {
            throw new ArgumentException("the median of no samples is undefined: the benchmark measured nothing", nameof(samples));
        }

        if (sorted.Any(double.IsNaN))
        {
            throw new ArgumentException("a benchmark sample is NaN", nameof(samples));
        }

        Array.Sort(sorted);
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
