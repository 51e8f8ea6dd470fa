namespace SecureFed.Protocol;

/// <summary>
/// Chooses the masking graph and the threshold t from the cohort size n, the assumed fraction of corrupt sites γ and
/// the expected dropout rate δ (SecAgg+, Bell et al. CCS 2020; compare Google's graph parameter finder).
/// <para>
/// A site's secrets are shared among its k neighbours and itself (k+1 holders). Rules, per neighbourhood:
/// <list type="bullet">
/// <item>t &gt; (k+1)/2, so the signed consistency check cannot be satisfied by two disjoint survivor sets and every
/// honest holder reveals the same kind of share for a given peer;</item>
/// <item>privacy: the corrupt holders alone reach t with probability ≤ 2^-40, i.e. P[Bin(k+1, γ) ≥ t] ≤ 2^-40;</item>
/// <item>correctness: enough holders survive, P[Bin(k+1, 1-δ) &lt; t] ≤ 2^-20.</item>
/// </list>
/// Under <see cref="GraphPolicy.Complete"/> (the default) small cohorts (n ≤ <see cref="CompleteGraphLimit"/>) use
/// the complete graph with t = ⌊n/2⌋+1 (at least 2), the smallest honest-majority threshold; large cohorts use the
/// smallest even k satisfying the rules, so k = O(log n). <see cref="GraphPolicy.Sparse"/> uses that smallest k for
/// every n where one below n − 1 exists.
/// </para>
/// </summary>
public static class GraphPlanner
{
    /// <summary>Cohorts up to this size use the complete graph. The default value is 512.</summary>
    public const int CompleteGraphLimit = 512;

    /// <summary>γ the aggregator plans with: the assumed fraction of corrupt sites. The default value is 0.05.</summary>
    public const double DefaultCorruptFraction = 0.05;

    /// <summary>δ the aggregator plans with: the expected fraction of sites that drop. The default value is 0.3.</summary>
    public const double DefaultDropoutFraction = 0.3;

    private static readonly double LogPrivacyBound = -40 * Math.Log(2);
    private static readonly double LogCorrectnessBound = -20 * Math.Log(2);

    /// <summary>Plans the graph of a cohort under <paramref name="policy"/> (see the type's remarks).</summary>
    /// <param name="cohortSize">n, at least 2.</param>
    /// <param name="policy">Complete (Harary only above <see cref="CompleteGraphLimit"/>) or sparse (Harary wherever the bounds allow).</param>
    /// <param name="corruptFraction">γ in [0, 0.5).</param>
    /// <param name="dropoutFraction">δ in [0, 1).</param>
    public static GraphPlan Plan(int cohortSize, GraphPolicy policy, double corruptFraction = DefaultCorruptFraction, double dropoutFraction = DefaultDropoutFraction) => policy switch
    {
        GraphPolicy.Complete => Plan(cohortSize, corruptFraction, dropoutFraction, forceComplete: null),
        GraphPolicy.Sparse => Plan(cohortSize, corruptFraction, dropoutFraction, forceComplete: false),
        _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, "Unknown graph policy."),
    };

    /// <summary>Parses a <c>Graph</c> setting: <c>complete</c> or <c>sparse</c> (case-insensitive).</summary>
    public static bool TryParsePolicy(string? value, out GraphPolicy policy)
    {
        switch (value?.Trim().ToLowerInvariant())
        {
            case "complete":
                policy = GraphPolicy.Complete;
                return true;
            case "sparse":
                policy = GraphPolicy.Sparse;
                return true;
            default:
                policy = GraphPolicy.Complete;
                return false;
        }
    }

    /// <summary>The setting's spelling of <paramref name="policy"/> (<c>complete</c> or <c>sparse</c>).</summary>
    public static string PolicyName(GraphPolicy policy) => policy == GraphPolicy.Sparse ? "sparse" : "complete";

    /// <summary>
    /// Checks an announced graph against what a site accepts: the complete graph always (the round parameters already
    /// require t &gt; n/2); a Harary graph only when <paramref name="accepted"/> is sparse or n exceeds
    /// <see cref="CompleteGraphLimit"/>, and only when t meets the privacy bound P[Bin(k+1, γ) ≥ t] ≤ 2^-40.
    /// </summary>
    /// <returns>Null when acceptable, else the reason to decline.</returns>
    public static string? CheckAnnounced(int cohortSize, int degree, int threshold, GraphPolicy accepted, double corruptFraction = DefaultCorruptFraction)
    {
        if (corruptFraction is < 0 or >= 0.5 || double.IsNaN(corruptFraction))
        {
            throw new ArgumentOutOfRangeException(nameof(corruptFraction), corruptFraction, "The corrupt fraction must be in [0, 0.5).");
        }

        if (degree >= cohortSize - 1)
        {
            return null;
        }

        if (accepted == GraphPolicy.Complete && cohortSize <= CompleteGraphLimit)
        {
            return $"the round uses a sparse masking graph (k = {degree}) for {cohortSize} sites; this site's Graph policy is complete, " +
                $"which accepts a sparse graph only above {CompleteGraphLimit} sites";
        }

        if (threshold < 1 || threshold > degree + 1 || LogBinomialUpperTail(degree + 1, corruptFraction, threshold) > LogPrivacyBound)
        {
            return $"the sparse masking graph's threshold t = {threshold} of {degree + 1} share holders does not meet the 2^-40 privacy bound " +
                $"for an assumed corrupt fraction of {corruptFraction.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        }

        return null;
    }

    /// <summary>Plans the complete graph or a Harary graph (see the type's remarks).</summary>
    /// <param name="cohortSize">n, at least 2.</param>
    /// <param name="corruptFraction">γ in [0, 0.5).</param>
    /// <param name="dropoutFraction">δ in [0, 1).</param>
    /// <param name="forceComplete">Use the complete graph whatever n is; null lets the size decide.</param>
    public static GraphPlan Plan(int cohortSize, double corruptFraction = 0.05, double dropoutFraction = 0.3, bool? forceComplete = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cohortSize, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cohortSize, 20_000);
        if (corruptFraction is < 0 or >= 0.5 || double.IsNaN(corruptFraction))
        {
            throw new ArgumentOutOfRangeException(nameof(corruptFraction), corruptFraction, "The corrupt fraction must be in [0, 0.5).");
        }

        if (dropoutFraction is < 0 or >= 1 || double.IsNaN(dropoutFraction))
        {
            throw new ArgumentOutOfRangeException(nameof(dropoutFraction), dropoutFraction, "The dropout fraction must be in [0, 1).");
        }

        bool complete = forceComplete ?? cohortSize <= CompleteGraphLimit;
        if (!complete)
        {
            for (int k = 2; k < cohortSize - 1; k += 2)
            {
                int holders = k + 1;
                for (int t = (holders / 2) + 1; t <= holders; t++)
                {
                    bool privacy = LogBinomialUpperTail(holders, corruptFraction, t) <= LogPrivacyBound;
                    bool correct = LogBinomialLowerTail(holders, 1 - dropoutFraction, t - 1) <= LogCorrectnessBound;
                    if (privacy && correct)
                    {
                        return new GraphPlan(cohortSize, k, t, false);
                    }
                }
            }
        }

        return new GraphPlan(cohortSize, cohortSize - 1, Math.Max(2, (cohortSize / 2) + 1), true);
    }

    /// <summary>log P[Bin(n, p) ≥ t].</summary>
    internal static double LogBinomialUpperTail(int n, double p, int t)
    {
        if (t <= 0)
        {
            return 0;
        }

        if (p <= 0)
        {
            return double.NegativeInfinity;
        }

        double acc = double.NegativeInfinity;
        for (int i = t; i <= n; i++)
        {
            acc = LogAdd(acc, LogBinomialPmf(n, p, i));
        }

        return acc;
    }

    /// <summary>log P[Bin(n, p) ≤ t].</summary>
    internal static double LogBinomialLowerTail(int n, double p, int t)
    {
        if (t < 0)
        {
            return double.NegativeInfinity;
        }

        if (p >= 1)
        {
            return t >= n ? 0 : double.NegativeInfinity;
        }

        double acc = double.NegativeInfinity;
        for (int i = 0; i <= Math.Min(t, n); i++)
        {
            acc = LogAdd(acc, LogBinomialPmf(n, p, i));
        }

        return acc;
    }

    private static double LogBinomialPmf(int n, double p, int i)
    {
        double logChoose = LogFactorial(n) - LogFactorial(i) - LogFactorial(n - i);
        double a = i == 0 ? 0 : i * Math.Log(p);
        double b = n - i == 0 ? 0 : (n - i) * Math.Log(1 - p);
        return logChoose + a + b;
    }

    private static readonly Lazy<double[]> LogFactorials = new(() =>
    {
        var table = new double[20_002];
        for (int i = 2; i < table.Length; i++)
        {
            table[i] = table[i - 1] + Math.Log(i);
        }

        return table;
    });

    private static double LogFactorial(int n) => LogFactorials.Value[n];

    private static double LogAdd(double a, double b)
    {
        if (double.IsNegativeInfinity(a))
        {
            return b;
        }

        if (double.IsNegativeInfinity(b))
        {
            return a;
        }

        double m = Math.Max(a, b);
        return m + Math.Log(Math.Exp(a - m) + Math.Exp(b - m));
    }
}
