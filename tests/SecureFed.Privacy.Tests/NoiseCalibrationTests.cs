using SecureFed.Privacy;

namespace SecureFed.Privacy.Tests;

public sealed class NoiseCalibrationTests
{
    [Theory]
    [InlineData(8.0, 1e-5, 0.04, 2250L, "opacus")]
    [InlineData(1.0, 1e-5, 0.0025, 6000L, "tfp")]
    [InlineData(3.0, 1e-6, 0.01, 500L, "opacus")]
    public void NoiseMultiplierFor_Target_RecoversEpsilonWithinTolerance(double epsilon, double delta, double q, long steps, string orders)
    {
        IReadOnlyList<double> list = RdpOrders.Parse(orders);

        double sigma = NoiseCalibration.NoiseMultiplierFor(epsilon, delta, q, steps, list);

        var accountant = new RdpAccountant(list);
        accountant.AddSubsampledGaussian(q, sigma, steps);
        double achieved = accountant.GetPrivacySpent(delta).Epsilon;
        Assert.True(achieved <= epsilon, $"sigma {sigma} gives epsilon {achieved} > target {epsilon}");
        Assert.True(achieved >= epsilon * (1 - 1e-3), $"sigma {sigma} gives epsilon {achieved}, far below target {epsilon}: not tight");
    }

    [Fact]
    public void NoiseMultiplierFor_OpacusVector_InvertsForwardComputation()
    {
        // Forward: sigma 1.5 -> 7.32911 (Opacus); inverse of 7.32911 must come back to 1.5 within 1e-4 relative.
        double sigma = NoiseCalibration.NoiseMultiplierFor(7.32911117143, 1e-5, 0.04, 2250, RdpOrders.Opacus);

        Assert.InRange(sigma, 1.5 * (1 - 1e-4), 1.5 * (1 + 1e-4));
    }

    [Fact]
    public void NoiseMultiplierFor_Unreachable_ThrowsWithFloor()
    {
        ArgumentException ex = Assert.Throws<ArgumentException>(
            () => NoiseCalibration.NoiseMultiplierFor(1e-6, 1e-5, 1.0, 1_000_000_000, RdpOrders.Opacus));
        Assert.Contains("unreachable", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.0, 1e-5, 0.1, 10L)]
    [InlineData(1.0, 0.0, 0.1, 10L)]
    [InlineData(1.0, 1e-5, 0.0, 10L)]
    [InlineData(1.0, 1e-5, 0.1, 0L)]
    public void NoiseMultiplierFor_InvalidArguments_Throw(double epsilon, double delta, double q, long steps)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => NoiseCalibration.NoiseMultiplierFor(epsilon, delta, q, steps));
    }
}
