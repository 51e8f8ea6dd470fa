using SecureFed.PrivacyAudit.Internal;

namespace SecureFed.PrivacyAudit;

/// <summary>
/// The one-run privacy audit of Steinke, Nasr and Jagielski ("Privacy Auditing with One (1) Training Run", NeurIPS
/// 2023): m audit examples are each included in training independently with probability ½; after training the
/// auditor guesses "in" for the k₊ highest-scored and "out" for the k₋ lowest-scored and abstains on the rest. If the
/// training is (ε, δ)-DP, the number of correct guesses v among the r = k₊ + k₋ guesses is stochastically dominated by
/// Binomial(r, e^ε / (1 + e^ε)) up to a δ term (their Theorem 5.2 and Appendix D's p-value), so a v that is too large
/// for an ε rejects that ε. <see cref="EpsilonLowerBound"/> is the largest ε rejected at the given confidence.
/// </summary>
public static class OneRunAudit
{
    /// <summary>
    /// p-value of at least <paramref name="correct"/> correct guesses out of <paramref name="guesses"/> if the training
    /// were (<paramref name="epsilon"/>, <paramref name="delta"/>)-DP: P[Binomial(r, q) ≥ v] + 2mδ · max_i P[v − i ≤
    /// Binomial(r, q) &lt; v] / i, with q = e^ε / (1 + e^ε), capped at 1 (Steinke et al., Appendix D).
    /// </summary>
    /// <param name="examples">m, the audit examples each included with probability ½.</param>
    /// <param name="guesses">r, the guesses made (abstentions excluded); r ≤ m.</param>
    /// <param name="correct">v, the correct guesses; v ≤ r.</param>
    /// <param name="epsilon">ε of the null hypothesis, ≥ 0.</param>
    /// <param name="delta">δ of the null hypothesis, in [0, 1].</param>
    public static double PValue(int examples, int guesses, int correct, double epsilon, double delta)
    {
        Check(examples, guesses, correct, delta);
        if (!(epsilon >= 0) || double.IsNaN(epsilon))
        {
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "ε must be ≥ 0.");
        }

        (double logQ, double logOneMinusQ) = Binomial.RandomizedResponse(epsilon);
        double beta = 0; // P[Binomial(r, q) ≥ v]
        for (int k = correct; k <= guesses; k++)
        {
            beta += Math.Exp(Binomial.LogPmf(guesses, k, logQ, logOneMinusQ));
        }

        if (delta == 0)
        {
            return Math.Min(beta, 1);
        }

        double alpha = 0;
        double sum = 0; // P[v > Binomial(r, q) ≥ v − i]
        for (int i = 1; i <= correct; i++)
        {
            sum += Math.Exp(Binomial.LogPmf(guesses, correct - i, logQ, logOneMinusQ));
            if (sum > i * alpha)
            {
                alpha = sum / i;
            }
        }

        return Math.Min(beta + (alpha * delta * 2 * examples), 1);
    }

    /// <summary>
    /// The largest ε (to 1e-9 relative) whose p-value is below <paramref name="pValue"/>: with confidence 1 − p, the
    /// training is not (ε, δ)-DP for any smaller ε. 0 when no ε &gt; 0 is rejected (e.g. guesses no better than chance).
    /// </summary>
    /// <param name="examples">m.</param>
    /// <param name="guesses">r.</param>
    /// <param name="correct">v.</param>
    /// <param name="delta">δ, in [0, 1].</param>
    /// <param name="pValue">1 − confidence, in (0, 1); 0.05 for 95 %.</param>
    public static double EpsilonLowerBound(int examples, int guesses, int correct, double delta, double pValue = 0.05)
    {
        Check(examples, guesses, correct, delta);
        if (!(pValue > 0 && pValue < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(pValue), pValue, "p must be in (0, 1).");
        }

        if (PValue(examples, guesses, correct, 0, delta) >= pValue)
        {
            return 0;
        }

        double low = 0; // p-value(low) < p
        double high = 1; // p-value(high) ≥ p
        while (PValue(examples, guesses, correct, high, delta) < pValue)
        {
            low = high;
            high *= 2;
            if (high > 1e4)
            {
                return low; // v = r with δ = 0 rejects every ε up to ~ r ln 2; no realistic audit gets here
            }
        }

        while (high - low > 1e-9 * high)
        {
            double mid = (low + high) / 2;
            if (PValue(examples, guesses, correct, mid, delta) < pValue)
            {
                low = mid;
            }
            else
            {
                high = mid;
            }
        }

        return low;
    }

    /// <summary>
    /// Guesses "in" for the <paramref name="guessIn"/> highest scores and "out" for the <paramref name="guessOut"/>
    /// lowest, and counts the correct guesses against the true inclusion.
    /// </summary>
    /// <returns>r (guesses) and v (correct guesses).</returns>
    public static (int Guesses, int Correct) Guess(IReadOnlyList<double> scores, IReadOnlyList<bool> included, int guessIn, int guessOut)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(included);
        if (scores.Count != included.Count)
        {
            throw new ArgumentException($"{scores.Count} scores but {included.Count} inclusion flags.", nameof(included));
        }

        if (guessIn < 0 || guessOut < 0 || guessIn + guessOut > scores.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(guessIn), $"{guessIn} + {guessOut} guesses for {scores.Count} examples.");
        }

        int[] order = [.. Enumerable.Range(0, scores.Count).OrderByDescending(i => scores[i]).ThenBy(i => i)];
        int correct = 0;
        for (int j = 0; j < guessIn; j++)
        {
            correct += included[order[j]] ? 1 : 0;
        }

        for (int j = order.Length - guessOut; j < order.Length; j++)
        {
            correct += included[order[j]] ? 0 : 1;
        }

        return (guessIn + guessOut, correct);
    }

    /// <summary>
    /// The audit as this tool runs it: guesses of k "in" and k "out" for each k in a fixed grid (5 %, 10 %, 25 % and 50 %
    /// of m per side), the bound of each at p / (grid size) (Bonferroni, so the reported maximum still holds with
    /// confidence 1 − p), and the best of them.
    /// </summary>
    public static OneRunAuditResult Run(IReadOnlyList<double> scores, IReadOnlyList<bool> included, double delta, double pValue = 0.05)
    {
        ArgumentNullException.ThrowIfNull(scores);
        int m = scores.Count;
        int[] grid = [.. new[] { 0.05, 0.10, 0.25, 0.50 }.Select(f => (int)Math.Floor(f * m)).Where(k => k >= 1).Distinct()];
        if (grid.Length == 0)
        {
            return new OneRunAuditResult(m, 0, 0, 0, pValue);
        }

        OneRunAuditResult best = new(m, 0, 0, 0, pValue / grid.Length);
        foreach (int k in grid)
        {
            (int r, int v) = Guess(scores, included, k, k);
            double bound = EpsilonLowerBound(m, r, v, delta, pValue / grid.Length);
            if (bound > best.EpsilonLowerBound || best.Guesses == 0)
            {
                best = new OneRunAuditResult(m, r, v, bound, pValue / grid.Length);
            }
        }

        return best;
    }

    private static void Check(int examples, int guesses, int correct, double delta)
    {
        if (!(correct >= 0 && correct <= guesses && guesses <= examples))
        {
            throw new ArgumentOutOfRangeException(nameof(correct), $"need 0 ≤ v ≤ r ≤ m; got v = {correct}, r = {guesses}, m = {examples}.");
        }

        if (!(delta >= 0 && delta <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(delta), delta, "δ must be in [0, 1].");
        }
    }
}
