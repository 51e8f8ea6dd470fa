using SecureFed.PrivacyAudit.Internal;

namespace SecureFed.PrivacyAudit.Tests;

public sealed class OneRunAuditTests
{
    [Fact]
    public void EpsilonLowerBound_AllCorrectWithoutDelta_MatchesClosedForm()
    {
        // δ = 0 and v = r: the p-value is q^r, so the bound solves q^r = p, i.e. q = p^(1/r), ε = ln(q / (1 − q)).
        double q = Math.Pow(0.05, 1.0 / 100);
        double expected = Math.Log(q / (1 - q));

        double bound = OneRunAudit.EpsilonLowerBound(examples: 100, guesses: 100, correct: 100, delta: 0, pValue: 0.05);

        Assert.Equal(3.4930, expected, 3);
        Assert.Equal(expected, bound, 4);
    }

    // Reference values from an independent Python implementation of Appendix D of Steinke et al. (exact binomial
    // coefficients with math.comb, bisection to 1e-9), not from this code.
    [Theory]
    [InlineData(1000, 100, 80, 1e-5, 0.05, 0.9553185347467661)]
    [InlineData(1000, 200, 150, 1e-5, 0.05, 0.819972911849618)]
    [InlineData(200, 40, 35, 1e-5, 0.0125, 0.8948316983878613)]
    [InlineData(10000, 1000, 700, 1e-5, 0.05, 0.7292532389983535)]
    [InlineData(500, 500, 400, 0, 0.05, 1.198645357042551)]
    public void EpsilonLowerBound_ReferenceValues_Match(int m, int r, int v, double delta, double p, double expected)
    {
        Assert.Equal(expected, OneRunAudit.EpsilonLowerBound(m, r, v, delta, p), 5);
    }

    [Fact]
    public void PValue_ReferenceValue_Matches()
    {
        Assert.Equal(0.07300911594917775, OneRunAudit.PValue(1000, 100, 80, 1.0, 1e-5), 10);
    }

    [Fact]
    public void PValue_SmallCaseWithDelta_MatchesHandComputation()
    {
        // r = v = 2, ε = ln 3 (q = 3/4): β = q² = 0.5625; α = max(P[B = 1] / 1, (P[B = 1] + P[B = 0]) / 2) = max(0.375, 0.21875);
        // p = β + α · δ · 2m = 0.5625 + 0.375 · 0.01 · 20 = 0.6375.
        double p = OneRunAudit.PValue(examples: 10, guesses: 2, correct: 2, epsilon: Math.Log(3), delta: 0.01);

        Assert.Equal(0.6375, p, 10);
    }

    [Fact]
    public void PValue_EpsilonZeroAndHalfCorrect_IsTheBinomialTail()
    {
        // P[Binomial(4, ½) ≥ 2] = 11/16.
        Assert.Equal(11.0 / 16, OneRunAudit.PValue(4, 4, 2, 0, 0), 12);
    }

    [Fact]
    public void EpsilonLowerBound_ChanceLevelGuesses_IsZero()
    {
        Assert.Equal(0, OneRunAudit.EpsilonLowerBound(1000, 500, 250, 1e-5));
        Assert.Equal(0, OneRunAudit.EpsilonLowerBound(1000, 500, 260, 1e-5));
    }

    [Fact]
    public void EpsilonLowerBound_MoreCorrectGuesses_NeverDecreases()
    {
        double previous = 0;
        for (int v = 100; v <= 200; v += 5)
        {
            double bound = OneRunAudit.EpsilonLowerBound(1000, 200, v, 1e-5);
            Assert.True(bound >= previous - 1e-9, $"bound fell from {previous} to {bound} at v = {v}");
            previous = bound;
        }

        Assert.True(previous > 3, $"200 of 200 correct gave only {previous}");
    }

    [Fact]
    public void EpsilonLowerBound_PerfectGuessesOfManyCanaries_IsLarge()
    {
        double bound = OneRunAudit.EpsilonLowerBound(1000, 1000, 1000, 1e-5);

        Assert.InRange(bound, 5, 20);
    }

    [Fact]
    public void EpsilonLowerBound_LargerDelta_NeverIncreases()
    {
        double tight = OneRunAudit.EpsilonLowerBound(1000, 200, 180, 0);
        double loose = OneRunAudit.EpsilonLowerBound(1000, 200, 180, 1e-4);

        Assert.True(loose <= tight, $"{loose} > {tight}");
    }

    [Fact]
    public void Run_ScoresIndependentOfInclusion_BoundIsZeroInAtLeast90PercentOfTrials()
    {
        // ε = 0: the "model" ignores the data. At 95 % confidence at most ~5 % of trials may show a positive bound.
        var random = new Random(11);
        int positive = 0;
        for (int trial = 0; trial < 200; trial++)
        {
            bool[] included = [.. Enumerable.Range(0, 200).Select(_ => random.NextDouble() < 0.5)];
            double[] scores = [.. included.Select(_ => random.NextDouble())];
            positive += OneRunAudit.Run(scores, included, 1e-5).EpsilonLowerBound > 0 ? 1 : 0;
        }

        Assert.True(positive <= 20, $"{positive} of 200 trials claimed ε > 0 for a mechanism that ignores its input");
    }

    [Fact]
    public void Run_RandomizedResponseAtEpsilonOne_BoundRarelyExceedsOne()
    {
        // A truly 1-DP mechanism: each inclusion bit is reported correctly with probability e/(1+e). The bound may
        // exceed the true ε in about 5 % of trials, never systematically.
        var random = new Random(12);
        double keep = Math.E / (1 + Math.E);
        int over = 0;
        double largest = 0;
        for (int trial = 0; trial < 100; trial++)
        {
            bool[] included = [.. Enumerable.Range(0, 1000).Select(_ => random.NextDouble() < 0.5)];
            double[] scores = [.. included.Select(b => ((random.NextDouble() < keep) == b ? 1.0 : 0.0) + (random.NextDouble() * 1e-3))];
            double bound = OneRunAudit.Run(scores, included, 0).EpsilonLowerBound;
            largest = Math.Max(largest, bound);
            over += bound > 1 ? 1 : 0;
        }

        Assert.True(over <= 10, $"{over} of 100 trials bounded a 1-DP mechanism above ε = 1");
        Assert.True(largest > 0.3, $"the audit never detected the 1-DP leak (largest bound {largest})");
    }

    [Fact]
    public void Guess_TopInBottomOut_CountsCorrectGuesses()
    {
        double[] scores = [0.9, 0.1, 0.8, 0.2, 0.5];
        bool[] included = [true, false, false, false, true];

        (int r, int v) = OneRunAudit.Guess(scores, included, guessIn: 2, guessOut: 2);

        // "in": 0.9 (in, right), 0.8 (out, wrong); "out": 0.1 (out, right), 0.2 (out, right).
        Assert.Equal(4, r);
        Assert.Equal(3, v);
    }

    [Fact]
    public void PValue_InvalidCounts_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => OneRunAudit.PValue(10, 11, 5, 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => OneRunAudit.PValue(10, 5, 6, 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => OneRunAudit.PValue(10, 5, 3, -1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => OneRunAudit.EpsilonLowerBound(10, 5, 3, 0, 1.5));
    }

    [Theory]
    [InlineData(255)]
    [InlineData(256)]
    [InlineData(1000)]
    public void LogFactorial_AcrossTheStirlingSwitch_MatchesTheSumOfLogs(int n)
    {
        double sum = 0;
        for (int i = 2; i <= n; i++)
        {
            sum += Math.Log(i);
        }

        Assert.Equal(sum, Binomial.LogFactorial(n), 8);
    }
}
