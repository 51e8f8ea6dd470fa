namespace SecureFed.Experiments;

/// <summary>An arm over all seeds: mean and spread.</summary>
/// <param name="Arm">Display name.</param>
/// <param name="Kind">Arm kind (see <see cref="ArmResult.Kind"/>).</param>
/// <param name="Epsilon">Patient-level ε, or null.</param>
/// <param name="MeanF1">Mean test F1 over seeds.</param>
/// <param name="StdF1">Sample standard deviation of the test F1 over seeds (0 with one seed).</param>
/// <param name="MinF1">Lowest test F1 over seeds.</param>
/// <param name="MaxF1">Highest test F1 over seeds.</param>
/// <param name="MeanF1PerType">Mean test F1 per entity type.</param>
/// <param name="MeanDevF1PerRound">Mean dev F1 per round.</param>
/// <param name="MeanWallSeconds">Mean wall time.</param>
public sealed record ArmSummary(string Arm, string Kind, double? Epsilon, double MeanF1, double StdF1, double MinF1, double MaxF1, IReadOnlyDictionary<string, double> MeanF1PerType, IReadOnlyList<double> MeanDevF1PerRound, double MeanWallSeconds)
{
    /// <summary>Summarizes the results of one arm (one per seed).</summary>
    public static ArmSummary Of(IReadOnlyList<ArmResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        if (results.Count == 0)
        {
            throw new ArgumentException("No results to summarize.", nameof(results));
        }

        double[] f1 = [.. results.Select(r => r.TestF1)];
        double mean = f1.Average();
        double std = f1.Length > 1 ? Math.Sqrt(f1.Sum(v => (v - mean) * (v - mean)) / (f1.Length - 1)) : 0;
        var perType = results[0].TestF1PerType.Keys.ToDictionary(t => t, t => results.Average(r => r.TestF1PerType.TryGetValue(t, out double v) ? v : 0), StringComparer.Ordinal);
        int rounds = results.Min(r => r.DevF1PerRound.Count);
        double[] curve = [.. Enumerable.Range(0, rounds).Select(i => results.Average(r => r.DevF1PerRound[i]))];
        return new ArmSummary(results[0].Arm, results[0].Kind, results[0].Epsilon, mean, std, f1.Min(), f1.Max(), perType, curve, results.Average(r => r.WallSeconds));
    }
}
