using SecureFed.Privacy;
using SecureFed.Testing;

namespace SecureFed.Privacy.Tests;

public sealed class AdaptiveClippingTests
{
    [Fact]
    public void Update_MostUpdatesClipped_ClipGrows()
    {
        var clipping = new AdaptiveClipping(initialClip: 1.0, targetQuantile: 0.5, learningRate: 0.2, countNoiseStddev: 0);

        double next = clipping.Update(unclippedFraction: 0.1);

        Assert.Equal(Math.Exp(0.2 * 0.4), next, 12);
        Assert.True(next > 1.0);
    }

    [Fact]
    public void Update_NoUpdateClipped_ClipShrinks()
    {
        var clipping = new AdaptiveClipping(1.0, 0.5, 0.2, 0);

        Assert.True(clipping.Update(1.0) < 1.0);
    }

    [Fact]
    public void UpdateFromCount_RepeatedRounds_ConvergesToTargetQuantile()
    {
        // Norms uniform on [0, 10]: the 0.7 quantile is 7. Start far away in both directions.
        var rng = new Random(1);
        using var random = new DeterministicRandomSource(4);
        var sampler = new DiscreteGaussianSampler(random);
        foreach (double start in new[] { 0.1, 100.0 })
        {
            var clipping = new AdaptiveClipping(start, 0.7, 0.2, countNoiseStddev: 2.0);
            for (int round = 0; round < 400; round++)
            {
                int unclipped = Enumerable.Range(0, 100).Count(_ => clipping.UnclippedIndicator(rng.NextDouble() * 10) == 1);
                clipping.UpdateFromCount(unclipped, 100, sampler);
            }

            Assert.InRange(clipping.Clip, 6.0, 8.0);
        }
    }

    [Fact]
    public void RhoPerRound_IsHalfInverseSquaredNoise()
    {
        Assert.Equal(1.0 / 8.0, new AdaptiveClipping(1, 0.5, 0.2, 2.0).RhoPerRound, 12);
    }

    [Theory]
    [InlineData(0.0, 0.5, 0.2, 1.0)]
    [InlineData(1.0, 1.0, 0.2, 1.0)]
    [InlineData(1.0, 0.5, 0.0, 1.0)]
    [InlineData(1.0, 0.5, 0.2, -1.0)]
    public void Constructor_InvalidArguments_Throw(double clip, double quantile, double eta, double noise)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdaptiveClipping(clip, quantile, eta, noise));
    }

    [Fact]
    public void Update_NoisedFractionAtTarget_ClipUnchanged()
    {
        var clipping = new AdaptiveClipping(0.37, 0.8, 0.2, 0);

        Assert.Equal(0.37, clipping.Update(0.8), 15);
        Assert.Equal(0.37 * Math.Exp(-0.2 * (0.9 - 0.8)), clipping.Update(0.9), 15);
    }

    [Theory]
    [InlineData(1.0, 1.0, 1.1547005383792515)] // 1 / √(1 − 1/4)
    [InlineData(2.854, 81.36, 2.8544391)]
    [InlineData(2.0, 1.000001, 1414.2146)] // σ_b just above σ / 2: σ_Δ explodes
    public void GradientNoiseMultiplier_KnownValues(double sigma, double countNoise, double expected)
    {
        Assert.Equal(expected, AdaptiveClipping.GradientNoiseMultiplier(sigma, countNoise), expected * 1e-6);
    }

    [Theory]
    [InlineData(0.5, 0.3)]
    [InlineData(2.854, 81.36)]
    [InlineData(8.0, 4.5)]
    public void GradientNoiseMultiplier_PairComposesToTheAccountantsSigma(double sigma, double countNoise)
    {
        double gradient = AdaptiveClipping.GradientNoiseMultiplier(sigma, countNoise);

        // The sum (sensitivity 1 in units of C, noise σ_Δ) and the centred count (sensitivity ½, noise σ_b) are one
        // Gaussian mechanism with noise multiplier σ: their squared sensitivity-to-noise ratios add.
        Assert.True(gradient > sigma);
        Assert.Equal(1 / (sigma * sigma), (1 / (gradient * gradient)) + (0.25 / (countNoise * countNoise)), 12);
    }

    [Theory]
    [InlineData(2.0, 1.0)] // σ_b = σ / 2
    [InlineData(2.0, 0.5)]
    [InlineData(2.0, 0.0)]
    [InlineData(2.0, double.PositiveInfinity)]
    [InlineData(0.0, 1.0)]
    public void GradientNoiseMultiplier_NoSolution_Refused(double sigma, double countNoise)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => AdaptiveClipping.GradientNoiseMultiplier(sigma, countNoise));
    }
}
