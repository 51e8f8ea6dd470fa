using SecureFed.Experiments;
using SecureFed.Testing;

namespace SecureFed.Integration.Tests;

/// <summary>DiSK's simplified Kalman filter with the extrapolated training point (<c>--server-kalman</c>).</summary>
public sealed class LookaheadFilterTests
{
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private static readonly long[] Examples = [300, 700, 1000];

    [Theory]
    [InlineData(0.5, 1.0)]
    [InlineData(0.7, 0.3 / 0.7)]
    [InlineData(1.0, 0.0)]
    public void TrainingPoint_FirstRoundIsTheModel_ThenExtrapolatesByGamma(double kappa, double gamma)
    {
        var filter = new LookaheadFilter(kappa);
        float[] x0 = [1f, -2f, 0.5f];
        float[] x1 = [1.5f, -2f, 0.25f];

        Assert.Equal(gamma, filter.Gamma, 12);
        Assert.Equal(x0, filter.TrainingPoint(x0));
        float[] z1 = filter.TrainingPoint(x1);

        for (int j = 0; j < x1.Length; j++)
        {
            Assert.Equal(x1[j] + (gamma * (x1[j] - x0[j])), z1[j], 1e-6);
        }

        Assert.NotSame(x1, z1);
    }

    [Fact]
    public void Filter_FirstUpdatePassesUnchanged_ThenMixesWithKappa()
    {
        var filter = new LookaheadFilter(0.25);
        double[] u0 = [4, -8];
        double[] u1 = [0, 8];

        filter.Filter(u0);
        filter.Filter(u1);

        Assert.Equal([4.0, -8.0], u0);
        Assert.Equal([(0.75 * 4) + (0.25 * 0), (0.75 * -8) + (0.25 * 8)], u1);
    }

    [Theory]
    [InlineData(0.3)]
    [InlineData(0.5)]
    [InlineData(0.8)]
    public void Filter_OnWhiteNoise_KeepsKappaOverTwoMinusKappaOfTheVariance(double kappa)
    {
        var filter = new LookaheadFilter(kappa);
        var random = new Random(7);
        const int d = 2_000;
        const int rounds = 60;
        double sum = 0;
        long count = 0;
        for (int t = 0; t < rounds; t++)
        {
            double[] noise = [.. Enumerable.Range(0, d).Select(_ => Gaussian(random))];
            filter.Filter(noise);
            if (t >= 30)
            {
                sum += noise.Sum(v => v * v);
                count += d;
            }
        }

        // Stationary variance of g_t = (1 − κ) g_{t−1} + κ w_t with unit-variance w: κ² / (1 − (1 − κ)²) = κ / (2 − κ).
        Assert.Equal(kappa / (2 - kappa), sum / count, 0.03);
    }

    [Fact]
    public void FilteredGradient_OnAQuadratic_TracksTheGradientAtTheModelBetterThanWithoutTheLookahead()
    {
        // f(x) = ½ Σ a_j x_j²: gradient descent with the filtered gradient. Evaluated at x_t + γ(x_t − x_{t−1}) the
        // filtered gradient follows ∇f(x_t) (DiSK's point); evaluated at x_t it lags like heavy-ball momentum.
        double[] a = [1.0, 0.3, 0.05];
        double errorWith = TrackingError(a, lookahead: true);
        double errorWithout = TrackingError(a, lookahead: false);

        Assert.True(errorWith < 0.2 * errorWithout, $"lookahead {errorWith:G4} against {errorWithout:G4} without");
    }

    [Fact]
    public void RunRound_WithTheFilter_AppliesTheFilteredAverageFromTheSecondRound()
    {
        const int d = 32;
        const double serverLr = 0.5;
        const double kappa = 0.4;
        float[] x0 = [.. Enumerable.Range(0, d).Select(j => 0.01f * j)];
        float[][] first = [.. Sites.Select((_, i) => Enumerable.Range(0, d).Select(j => 0.002f * (((i + 1) * j) % 5)).ToArray())];
        float[][] second = [.. Sites.Select((_, i) => Enumerable.Range(0, d).Select(j => -0.003f * (((i + 2) * j) % 3)).ToArray())];

        using var plain = new InProcessSecureAggregation("kalman-test", Sites, l2Clip: 10, siteNoiseMultiplier: 0, weightCap: 1000, serverLearningRate: serverLr);
        float[] plain1 = Run(plain, 1, x0, first);
        float[] plain2 = Run(plain, 2, plain1, second);
        using var filtered = new InProcessSecureAggregation("kalman-test", Sites, l2Clip: 10, siteNoiseMultiplier: 0, weightCap: 1000, serverLearningRate: serverLr,
            updateFilter: new LookaheadFilter(kappa));
        float[] filtered1 = Run(filtered, 1, x0, first);
        float[] filtered2 = Run(filtered, 2, filtered1, second);

        for (int j = 0; j < d; j++)
        {
            double u1 = (plain1[j] - x0[j]) / serverLr;
            double u2 = (plain2[j] - plain1[j]) / serverLr;
            Assert.Equal(plain1[j], filtered1[j], 1e-6);
            Assert.Equal(filtered1[j] + (serverLr * (((1 - kappa) * u1) + (kappa * u2))), filtered2[j], 1e-5);
        }

        Assert.NotEqual(plain2, filtered2);
    }

    [Theory]
    [InlineData(0.0, false)]
    [InlineData(-0.5, false)]
    [InlineData(1.5, false)]
    [InlineData(double.NaN, false)]
    [InlineData(0.5, true)]
    public void Validate_BadKalman_RefusedNamingTheOption(double kappa, bool noiseCorrection)
    {
        var options = new ExperimentOptions
        {
            DataDirectory = "/nonexistent/ncbi",
            ServerKalman = kappa,
            ServerOptimizerName = noiseCorrection ? "adam" : "avg",
            ServerNoiseCorrection = noiseCorrection,
        };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--server-kalman", error.Message, StringComparison.Ordinal);
    }

    private static double TrackingError(double[] a, bool lookahead)
    {
        const double lr = 0.5;
        var filter = new LookaheadFilter(0.3);
        float[] x = [1f, 1f, 1f];
        double error = 0;
        for (int t = 0; t < 40; t++)
        {
            float[] point = filter.TrainingPoint(x);
            float[] at = lookahead ? point : x;
            double[] g = [.. at.Select((v, j) => a[j] * v)];
            filter.Filter(g);
            if (t >= 5)
            {
                error += g.Select((v, j) => Math.Pow(v - (a[j] * x[j]), 2)).Sum() / x.Select((v, j) => Math.Pow(a[j] * v, 2)).Sum();
            }

            x = [.. x.Select((v, j) => (float)(v - (lr * g[j])))];
        }

        return error;
    }

    private static float[] Run(InProcessSecureAggregation secAgg, long round, float[] global, float[][] deltas)
    {
        float[][] copies = [.. deltas.Select(x => (float[])x.Clone())];
        var random = Sites.Select((_, i) => new DeterministicRandomSource(100 + i + (10 * (int)round))).ToArray();
        try
        {
            return secAgg.RunRound(round, global, copies, Examples, random);
        }
        finally
        {
            foreach (DeterministicRandomSource r in random)
            {
                r.Dispose();
            }
        }
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
