using SecureFed.Privacy;
using SecureFed.Testing;

namespace SecureFed.Privacy.Tests;

public sealed class DistributedDpTests
{
    [Fact]
    public void Plan_SigmaSite_IsTargetTimesRoundedSensitivityOverSqrtThreshold()
    {
        DistributedDpPlan plan = DistributedDp.Plan(l2Clip: 1.0, scale: 1000, dimension: 10_000, cohortSize: 10, minSurvivors: 7, targetNoiseMultiplier: 1.2);

        double c = 1000;
        double expectedL2 = Math.Min(
            c + 100,
            Math.Sqrt((c * c) + 2500 + (Math.Sqrt(2 * 0.5) * (c + 50))));
        Assert.Equal(expectedL2, plan.RoundedL2Sensitivity, 9);
        Assert.True(plan.RoundedL2Sensitivity > c);
        double exact = 1.2 * expectedL2 / Math.Sqrt(7);
        Assert.InRange(plan.SigmaSite, exact, exact + (1.0 / 256));
        Assert.Equal(Math.Floor(plan.SigmaSite * 256), plan.SigmaSite * 256);
        Assert.Equal(expectedL2 * Math.Min(100, expectedL2), plan.RoundedL1Sensitivity, 6);
    }

    [Fact]
    public void RoundedL2NormBound_BetaZero_IsNormPlusSqrtDimension()
    {
        Assert.Equal(5.0 + 4.0, DistributedDp.RoundedL2NormBound(5.0, 16, 0.0));
    }

    [Fact]
    public void RoundedL2NormBound_RandomizedRoundingOfRealVectors_StaysBelowBoundMostOfTheTime()
    {
        // Theorem 1: P[||round(x)|| > bound] <= beta; with beta = exp(-1/2) ~ 0.61 the bound must hold at least 39% of the time,
        // and (being a tail bound) in practice nearly always.
        var rng = new Random(5);
        int d = 1000;
        int within = 0;
        for (int trial = 0; trial < 200; trial++)
        {
            double[] x = Enumerable.Range(0, d).Select(_ => rng.NextDouble() * 3).ToArray();
            double norm = Math.Sqrt(x.Sum(v => v * v));
            double[] rounded = x.Select(v => Math.Floor(v) + (rng.NextDouble() < v - Math.Floor(v) ? 1 : 0)).ToArray();
            double roundedNorm = Math.Sqrt(rounded.Sum(v => v * v));
            if (roundedNorm <= DistributedDp.RoundedL2NormBound(norm, d, DistributedDp.DefaultBeta))
            {
                within++;
            }
        }

        Assert.True(within >= 0.39 * 200, $"only {within}/200 within the bound");
    }

    [Theory]
    [InlineData(10, 7, 7)]
    [InlineData(10, 7, 10)]
    [InlineData(5, 3, 3)]
    public void AddNoise_SumOfSurvivingSites_HasAtLeastTargetVariance(int cohort, int threshold, int survivors)
    {
        DistributedDpPlan plan = DistributedDp.Plan(1.0, 8, dimension: 4000, cohortSize: cohort, minSurvivors: threshold, targetNoiseMultiplier: 0.5);
        using var random = new DeterministicRandomSource(17);
        var sampler = new DiscreteGaussianSampler(random);
        const int bits = 20;
        var sum = new long[plan.Dimension];
        for (int site = 0; site < survivors; site++)
        {
            var words = new uint[plan.Dimension];
            DistributedDp.AddNoise(words, bits, plan.SigmaSite, sampler);
            for (int i = 0; i < words.Length; i++)
            {
                // Decode the two's-complement residue back to a signed integer.
                long w = words[i];
                sum[i] += w >= 1L << (bits - 1) ? w - (1L << bits) : w;
            }
        }

        double variance = sum.Sum(v => (double)v * v) / sum.Length;
        double target = plan.TargetNoiseMultiplier * plan.RoundedL2Sensitivity;
        double expected = survivors * plan.SigmaSite * plan.SigmaSite;

        // Variance of the sum is survivors * sigma_site^2 (discrete Gaussian variance ~ sigma^2 for sigma >= 1);
        // 4000 coordinates give a relative standard error of sqrt(2/4000) ~ 2.2%; allow 5 of them.
        Assert.InRange(variance, expected * 0.89, expected * 1.11);
        Assert.True(expected >= (target * target) - 1e-9);
        Assert.True(Math.Sqrt(expected) >= plan.TargetNoiseMultiplier * plan.L2Clip * plan.Scale);
    }

    [Fact]
    public void AddNoise_WrapsModuloBitWidth()
    {
        using var random = new DeterministicRandomSource(2);
        var sampler = new DiscreteGaussianSampler(random);
        var words = new uint[2000];
        Array.Fill(words, 15u);

        DistributedDp.AddNoise(words, 4, 30.0, sampler);

        Assert.All(words, w => Assert.InRange(w, 0u, 15u));
        Assert.True(words.Distinct().Count() > 8);
    }

    [Fact]
    public void AddNoise_WordOutsideField_ThrowsBeforeChangingAnything()
    {
        var sampler = new DiscreteGaussianSampler(SecureFed.Crypto.SystemRandomSource.Instance);
        uint[] words = [1, 2, 1u << 10];

        Assert.Throws<ArgumentOutOfRangeException>(() => DistributedDp.AddNoise(words, 8, 3.0, sampler));
        Assert.Equal([1u, 2u, 1u << 10], words);
    }

    [Fact]
    public void RhoPerRound_FewerSurvivors_CostsMore()
    {
        DistributedDpPlan plan = DistributedDp.Plan(1.0, 100, 1000, cohortSize: 10, minSurvivors: 6, targetNoiseMultiplier: 1.0);

        double atThreshold = DistributedDp.RhoPerRound(plan, 6);
        double allSurvive = DistributedDp.RhoPerRound(plan, 10);
        double belowThreshold = DistributedDp.RhoPerRound(plan, 3);

        Assert.True(allSurvive < atThreshold);
        Assert.True(belowThreshold > atThreshold);

        // With sigma_site >> 1 the tau term vanishes and rho = 1/2 (Delta_2 / (sqrt(t) sigma_site))^2 ~ 1/(2 z^2)
        // (slightly below: sigma_site is rounded up).
        Assert.Equal(0.5 * Math.Pow(plan.RoundedL2Sensitivity / (Math.Sqrt(6) * plan.SigmaSite), 2), atThreshold, 12);
        Assert.InRange(atThreshold, 0.499, 0.5);
    }

    [Fact]
    public void RhoPerRound_SmallSigma_TauTermIncreasesRho()
    {
        DistributedDpPlan plan = DistributedDp.Plan(1.0, 0.5, 50, cohortSize: 20, minSurvivors: 20, targetNoiseMultiplier: 0.65);
        double withoutTau = 0.5 * Math.Pow(plan.RoundedL2Sensitivity / (Math.Sqrt(20) * plan.SigmaSite), 2);

        Assert.True(plan.SigmaSite < 1.0);
        Assert.True(DistributedDp.RhoPerRound(plan, 20) > withoutTau);
    }

    [Fact]
    public void RhoPerRound_HandMadePlanWithTinySigma_Throws()
    {
        DistributedDpPlan plan = DistributedDp.Plan(1.0, 100, 1000, 10, 6, 1.0) with { SigmaSite = 0.25 };

        Assert.Throws<ArgumentException>(() => DistributedDp.RhoPerRound(plan, 6));
    }

    [Fact]
    public void NoiseHeadroom_ScalesWithSqrtSites()
    {
        DistributedDpPlan plan = DistributedDp.Plan(1.0, 100, 1000, 16, 16, 1.0);

        Assert.Equal((long)Math.Ceiling(20 * plan.SigmaSite * 4), DistributedDp.NoiseHeadroom(plan, 16));
    }

    [Fact]
    public void Plan_TinyScale_ThrowsAskingForLargerScale()
    {
        ArgumentException ex = Assert.Throws<ArgumentException>(() => DistributedDp.Plan(0.001, 1, 1, 100, 100, 0.1));
        Assert.Contains("Increase the scale", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_ThresholdAboveCohort_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DistributedDp.Plan(1, 100, 10, cohortSize: 3, minSurvivors: 4, targetNoiseMultiplier: 1));
    }
}
