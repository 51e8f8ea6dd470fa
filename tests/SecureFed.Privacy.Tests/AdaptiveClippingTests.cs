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
}
