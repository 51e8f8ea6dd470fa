using System.Numerics;

using SecureFed.Crypto;
using SecureFed.Privacy;
using SecureFed.Testing;

namespace SecureFed.Privacy.Tests;

public sealed class DiscreteGaussianSamplerTests
{
    private const int SampleCount = 60_000;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<double, Lazy<long[]>> SharedDraws = new();

    public static TheoryData<double> Sigmas => new() { 0.5, 1.0, 3.0, 20.0, 7.3890560989306504 };

    [Theory]
    [MemberData(nameof(Sigmas))]
    public void Sample_ManyDraws_MeanAndVarianceMatchExactPmf(double sigma)
    {
        var reference = new DiscreteGaussianReference(sigma);
        long[] samples = SharedDraw(sigma);

        double mean = samples.Average(x => (double)x);
        double variance = samples.Sum(x => (double)x * x) / samples.Length;

        // Mean: 5 standard errors. Variance (about the known mean 0): 5 standard errors of the second-moment estimator.
        double meanSe = Math.Sqrt(reference.Variance / samples.Length);
        double varianceSe = Math.Sqrt((reference.FourthMoment - (reference.Variance * reference.Variance)) / samples.Length);
        Assert.InRange(mean, -5 * meanSe, 5 * meanSe);
        Assert.InRange(variance, reference.Variance - (5 * varianceSe), reference.Variance + (5 * varianceSe));
    }

    [Theory]
    [MemberData(nameof(Sigmas))]
    public void Sample_ManyDraws_ChiSquareAgainstPmfPasses(double sigma)
    {
        var reference = new DiscreteGaussianReference(sigma);
        long[] samples = SharedDraw(sigma);
        var counts = samples.GroupBy(x => x).ToDictionary(g => g.Key, g => g.LongCount());

        // Bins: every integer with expected count >= 20, plus the two tails lumped.
        int k = 0;
        while (reference.Probability(k + 1) * samples.Length >= 20)
        {
            k++;
        }

        double chi2 = 0;
        int bins = 0;
        for (int x = -k; x <= k; x++)
        {
            double expected = reference.Probability(x) * samples.Length;
            double observed = counts.GetValueOrDefault(x);
            chi2 += (observed - expected) * (observed - expected) / expected;
            bins++;
        }

        double tailExpected = reference.TwoSidedTail(k + 1) * samples.Length;
        if (tailExpected > 0)
        {
            double tailObserved = samples.LongCount(x => Math.Abs(x) > k);
            chi2 += (tailObserved - tailExpected) * (tailObserved - tailExpected) / tailExpected;
            bins++;
        }

        int df = bins - 1;
        Assert.True(chi2 < ChiSquareCritical(df), $"chi^2 = {chi2:F1} with {df} degrees of freedom at sigma {sigma}");
    }

    [Theory]
    [MemberData(nameof(Sigmas))]
    public void Sample_ManyDraws_TailProbabilitiesMatchPmf(double sigma)
    {
        var reference = new DiscreteGaussianReference(sigma);
        long[] samples = SharedDraw(sigma);

        foreach (double multiple in new[] { 1.0, 2.0, 3.0 })
        {
            int k = (int)Math.Ceiling(multiple * sigma);
            double p = reference.TwoSidedTail(k);
            double observed = samples.LongCount(x => Math.Abs(x) >= k) / (double)samples.Length;
            double se = Math.Sqrt(p * (1 - p) / samples.Length);
            Assert.InRange(observed, p - (5 * se) - 1e-9, p + (5 * se) + 1e-9);
        }
    }

    [Fact]
    public void Sample_Symmetric_PositiveAndNegativeBalanced()
    {
        long[] samples = Draw(2.5, seed: 41, count: 20_000);
        long positive = samples.LongCount(x => x > 0);
        long negative = samples.LongCount(x => x < 0);
        double n = positive + negative;

        Assert.InRange(positive / n, 0.5 - (5 * Math.Sqrt(0.25 / n)), 0.5 + (5 * Math.Sqrt(0.25 / n)));
    }

    [Fact]
    public void Sample_SameSeed_IsReproducibleAndDifferentSeedsDiffer()
    {
        Assert.Equal(Draw(4.0, seed: 5, count: 1000), Draw(4.0, seed: 5, count: 1000));
        Assert.NotEqual(Draw(4.0, seed: 5, count: 1000), Draw(4.0, seed: 6, count: 1000));
    }

    [Fact]
    public void Sample_SingleAndSpanOverloads_ShareTheStream()
    {
        using var r1 = new DeterministicRandomSource(9);
        using var r2 = new DeterministicRandomSource(9);
        var a = new DiscreteGaussianSampler(r1);
        var b = new DiscreteGaussianSampler(r2);
        var batch = new long[50];

        b.Sample(3.0, batch);
        long[] single = Enumerable.Range(0, 50).Select(_ => a.Sample(3.0)).ToArray();

        Assert.Equal(batch, single);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(1e13)]
    public void Sample_InvalidSigma_Throws(double sigma)
    {
        var sampler = new DiscreteGaussianSampler(SystemRandomSource.Instance);
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Sample(sigma));
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(3.0)]
    [InlineData(1.1)]
    [InlineData(123456.789)]
    public void ExactSquare_Double_IsExactRationalSquare(double sigma)
    {
        (BigInteger n, BigInteger d) = DiscreteGaussianSampler.ExactSquare(sigma);

        // Independently: sigma * 2^k is an integer m for some k (doubling is exact), so sigma^2 = m^2 / 2^(2k).
        int k = 0;
        double scaled = sigma;
        while (scaled != Math.Floor(scaled))
        {
            scaled *= 2;
            k++;
        }

        var m = new BigInteger(scaled);
        Assert.Equal(m * m * d, n * (BigInteger.One << (2 * k)));
    }

    /// <summary>One reproducible draw per sigma, shared by the mean/variance, chi-square and tail tests (keeps the suite fast).</summary>
    private static long[] SharedDraw(double sigma) =>
        SharedDraws.GetOrAdd(sigma, s => new Lazy<long[]>(() => Draw(s, seed: 11))).Value;

    private static long[] Draw(double sigma, int seed, int count = SampleCount)
    {
        using var random = new DeterministicRandomSource(seed);
        var sampler = new DiscreteGaussianSampler(random);
        var samples = new long[count];
        sampler.Sample(sigma, samples);
        return samples;
    }

    /// <summary>Upper 1e-6 quantile of chi-square (Wilson–Hilferty), so a correct sampler fails ~never.</summary>
    private static double ChiSquareCritical(int df)
    {
        const double z = 4.753;
        double h = 2.0 / (9.0 * df);
        return df * Math.Pow(1 - h + (z * Math.Sqrt(h)), 3);
    }
}
