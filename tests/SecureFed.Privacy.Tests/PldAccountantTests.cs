using SecureFed.Privacy.Internal;

namespace SecureFed.Privacy.Tests;

/// <summary>
/// The PLD accountant against the exact Gaussian mechanism (q = 1, where the composed loss is Gaussian and δ(ε) has a
/// closed form, Balle and Wang, ICML 2018), against the Rényi-DP bound it must never exceed, and its FFT against a naive DFT.
/// </summary>
public sealed class PldAccountantTests
{
    [Theory]
    [InlineData(1.0, 1L, 1e-5)]
    [InlineData(2.0, 50L, 1e-5)]
    [InlineData(5.0, 200L, 1e-6)]
    public void Epsilon_FullBatch_IsTheExactGaussianEpsilonRoundedUpByAtMostTheGrid(double sigma, long steps, double delta)
    {
        double mu = Math.Sqrt(steps) / sigma; // T Gaussian steps of sensitivity 1 = one Gaussian of sensitivity √T
        double exact = ExactGaussianEpsilon(mu, delta);

        double pld = PldAccountant.Epsilon(sigma, 1.0, steps, delta);

        Assert.True(pld >= exact - 1e-6, $"PLD ε {pld} is below the exact {exact}: not an upper bound");
        Assert.True(pld <= exact + (steps * PldAccountant.DefaultGridStep), $"PLD ε {pld} is more than the grid's worst case above the exact {exact}");
        Assert.True(pld <= exact + 0.02 + (0.6 * steps * PldAccountant.DefaultGridStep), $"PLD ε {pld} against exact {exact}: looser than expected");
    }

    [Theory]
    [InlineData(1.195, 0.1, 200L)]
    [InlineData(0.8, 0.01, 100L)]
    [InlineData(2.854, 0.3, 100L)]
    [InlineData(1.5, 0.04, 300L)]
    public void Epsilon_Subsampled_NeverExceedsTheRdpBound(double sigma, double q, long steps)
    {
        var rdp = new RdpAccountant();
        rdp.AddSubsampledGaussian(q, sigma, steps);
        double bound = rdp.GetPrivacySpent(1e-5).Epsilon;

        double pld = PldAccountant.Epsilon(sigma, q, steps, 1e-5);

        Assert.InRange(pld, 0.3 * bound, bound);
    }

    [Fact]
    public void Epsilon_MoreNoiseOrFewerSteps_SpendsLess()
    {
        double baseline = PldAccountant.Epsilon(1.2, 0.1, 100, 1e-5);

        Assert.True(PldAccountant.Epsilon(1.5, 0.1, 100, 1e-5) < baseline);
        Assert.True(PldAccountant.Epsilon(1.2, 0.1, 50, 1e-5) < baseline);
        Assert.True(PldAccountant.Epsilon(1.2, 0.05, 100, 1e-5) < baseline);
    }

    [Fact]
    public void Delta_AtTheReportedEpsilon_IsAtMostTheTarget()
    {
        double epsilon = PldAccountant.Epsilon(1.1, 0.1, 120, 1e-5);

        Assert.True(PldAccountant.Delta(1.1, 0.1, 120, epsilon) <= 1e-5 * (1 + 1e-9));
        Assert.True(PldAccountant.Delta(1.1, 0.1, 120, epsilon * 0.98) > 1e-5);
    }

    [Fact]
    public void NoiseMultiplierFor_Target_MeetsItTightlyAndNeedsLessNoiseThanRdp()
    {
        double rdpSigma = NoiseCalibration.NoiseMultiplierFor(8, 1e-5, 0.1, 50);

        double sigma = PldAccountant.NoiseMultiplierFor(8, 1e-5, 0.1, 50);

        Assert.True(PldAccountant.Epsilon(sigma, 0.1, 50, 1e-5) <= 8);
        Assert.True(PldAccountant.Epsilon(sigma * 0.995, 0.1, 50, 1e-5) > 8, "a slightly smaller σ also meets the target: not tight");
        Assert.True(sigma < rdpSigma, $"PLD σ {sigma} is not below the RDP σ {rdpSigma}");
    }

    [Fact]
    public void Epsilon_BadArguments_NameTheArgument()
    {
        Assert.Equal("sigma", Assert.Throws<ArgumentOutOfRangeException>(() => PldAccountant.Epsilon(0, 0.1, 10, 1e-5)).ParamName);
        Assert.Equal("q", Assert.Throws<ArgumentOutOfRangeException>(() => PldAccountant.Epsilon(1, 1.5, 10, 1e-5)).ParamName);
        Assert.Equal("delta", Assert.Throws<ArgumentOutOfRangeException>(() => PldAccountant.Epsilon(1, 0.1, 10, 0)).ParamName);
        Assert.Equal("gridStep", Assert.Throws<ArgumentOutOfRangeException>(() => PldAccountant.Epsilon(1, 0.1, 10, 1e-5, gridStep: 1)).ParamName);
        Assert.Contains("larger grid step", Assert.Throws<ArgumentException>(() => PldAccountant.Epsilon(1, 0.1, 1_000_000, 1e-5, gridStep: 1e-5)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fft_RandomVector_EqualsNaiveDftAndInvertsExactly()
    {
        var random = new Random(5);
        const int n = 64;
        double[] re = [.. Enumerable.Range(0, n).Select(_ => random.NextDouble() - 0.5)];
        double[] im = [.. Enumerable.Range(0, n).Select(_ => random.NextDouble() - 0.5)];
        double[] re0 = (double[])re.Clone();
        double[] im0 = (double[])im.Clone();

        Fft.Transform(re, im, inverse: false);

        for (int k = 0; k < n; k++)
        {
            double sr = 0;
            double si = 0;
            for (int j = 0; j < n; j++)
            {
                double angle = -2 * Math.PI * j * k / n;
                sr += (re0[j] * Math.Cos(angle)) - (im0[j] * Math.Sin(angle));
                si += (re0[j] * Math.Sin(angle)) + (im0[j] * Math.Cos(angle));
            }

            Assert.Equal(sr, re[k], 10);
            Assert.Equal(si, im[k], 10);
        }

        Fft.Transform(re, im, inverse: true);
        for (int j = 0; j < n; j++)
        {
            Assert.Equal(re0[j], re[j], 12);
            Assert.Equal(im0[j], im[j], 12);
        }
    }

    /// <summary>The ε of a Gaussian mechanism with μ = sensitivity / σ at δ: δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2).</summary>
    private static double ExactGaussianEpsilon(double mu, double delta)
    {
        static double Phi(double z) => 0.5 * LogMath.Erfc(-z / Math.Sqrt(2));
        double DeltaAt(double e) => Phi((-e / mu) + (mu / 2)) - (Math.Exp(e) * Phi((-e / mu) - (mu / 2)));
        double lo = 0;
        double hi = 100;
        for (int i = 0; i < 200; i++)
        {
            double mid = 0.5 * (lo + hi);
            if (DeltaAt(mid) > delta)
            {
                lo = mid;
            }
            else
            {
                hi = mid;
            }
        }

        return hi;
    }
}
