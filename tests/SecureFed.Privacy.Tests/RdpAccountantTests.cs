using SecureFed.Privacy;

namespace SecureFed.Privacy.Tests;

public sealed class RdpAccountantTests
{
    private const double RelativeTolerance = 1e-4;

    public static TheoryData<double, double, long, double, string, RdpConversion, double> PublishedVectors => new()
    {
        // Opacus opacus/tests/accountants_test.py::test_rdp_accountant (steps = int(90 / 0.04)).
        { 1.5, 0.04, 2250, 1e-5, "opacus", RdpConversion.Improved, 7.32911117143 },

        // TF-Privacy compute_dp_sgd_privacy_test.py Test0 (n = 60000, batch 150, 15 epochs): classic, then improved.
        { 1.3, 0.0025, 6000, 1e-5, "tfp", RdpConversion.Classic, 0.941870567 },
        { 1.3, 0.0025, 6000, 1e-5, "tfp", RdpConversion.Improved, 0.7242234026109595 },

        // TF-Privacy Test1 (n = 100000, batch 100, 30 epochs, delta 1e-7).
        { 1.0, 0.001, 30000, 1e-7, "tfp", RdpConversion.Classic, 1.70928734 },
        { 1.0, 0.001, 30000, 1e-7, "tfp", RdpConversion.Improved, 1.4154988495444842 },
    };

    [Theory]
    [MemberData(nameof(PublishedVectors))]
    public void GetPrivacySpent_PublishedVector_MatchesReference(
        double sigma, double q, long steps, double delta, string orders, RdpConversion conversion, double expected)
    {
        var accountant = new RdpAccountant(RdpOrders.Parse(orders));
        accountant.AddSubsampledGaussian(q, sigma, steps);

        PrivacySpent spent = accountant.GetPrivacySpent(delta, conversion);

        Assert.InRange(spent.Epsilon, expected * (1 - RelativeTolerance), expected * (1 + RelativeTolerance));
    }

    [Fact]
    public void GetPrivacySpent_TfPrivacyTest0_OptimalOrderIs19()
    {
        var accountant = new RdpAccountant(RdpOrders.TensorFlowPrivacy);
        accountant.AddSubsampledGaussian(0.0025, 1.3, 6000);

        Assert.Equal(19.0, accountant.GetPrivacySpent(1e-5, RdpConversion.Classic).Order);
        Assert.Equal(19.0, accountant.GetPrivacySpent(1e-5, RdpConversion.Improved).Order);
    }

    [Fact]
    public void GetPrivacySpent_TfPrivacyTest2_LowNoiseUsesSmallestFractionalOrder()
    {
        // TF-Privacy Test2: n = 1e8, batch 1024, sigma 0.1, 10 epochs, delta 1e-7 -> order 1.25, eps 5907984.81 (classic).
        var accountant = new RdpAccountant(RdpOrders.TensorFlowPrivacy);
        accountant.AddSubsampledGaussian(1024 / 1e8, 0.1, (long)Math.Ceiling(10 * 1e8 / 1024));

        PrivacySpent classic = accountant.GetPrivacySpent(1e-7, RdpConversion.Classic);
        PrivacySpent improved = accountant.GetPrivacySpent(1e-7, RdpConversion.Improved);

        Assert.Equal(1.25, classic.Order);
        Assert.InRange(classic.Epsilon, 5907984.81339406 * (1 - RelativeTolerance), 5907984.81339406 * (1 + RelativeTolerance));
        Assert.InRange(improved.Epsilon, 5907982.3113978775 * (1 - RelativeTolerance), 5907982.3113978775 * (1 + RelativeTolerance));
    }

    [Fact]
    public void Orders_OpacusAndTfp_HaveReferenceShape()
    {
        Assert.Equal(99 + 52, RdpOrders.Opacus.Count);
        Assert.Equal(1.1, RdpOrders.Opacus[0], 12);
        Assert.Equal(10.9, RdpOrders.Opacus[98], 12);
        Assert.Equal(12.0, RdpOrders.Opacus[99]);
        Assert.Equal(63.0, RdpOrders.Opacus[^1]);
        Assert.Equal(10 + 59 + 3, RdpOrders.TensorFlowPrivacy.Count);
        Assert.Equal(1.25, RdpOrders.TensorFlowPrivacy[0]);
        Assert.Equal(512.0, RdpOrders.TensorFlowPrivacy[^1]);
        Assert.Throws<ArgumentException>(() => RdpOrders.Parse("pld"));
    }

    [Fact]
    public void Compute_FullBatch_IsPlainGaussian()
    {
        Assert.Equal(2.5 / (2 * 1.7 * 1.7), SubsampledGaussianRdp.Compute(1.0, 1.7, 2.5), 14);
    }

    [Theory]
    [InlineData(0.01, 1.0)]
    [InlineData(0.2, 0.8)]
    [InlineData(0.5, 4.0)]
    public void Compute_FractionalOrder_LiesBetweenNeighbouringIntegerOrders(double q, double sigma)
    {
        // (alpha - 1) * RDP(alpha) is convex in alpha and RDP is non-decreasing in alpha, so the fractional
        // series must land between its integer neighbours; this checks the erfc series against the binomial one.
        for (double alpha = 2.1; alpha < 9; alpha += 0.7)
        {
            double lo = SubsampledGaussianRdp.Compute(q, sigma, Math.Floor(alpha));
            double hi = SubsampledGaussianRdp.Compute(q, sigma, Math.Ceiling(alpha));
            double mid = SubsampledGaussianRdp.Compute(q, sigma, alpha);
            Assert.InRange(mid, lo * (1 - 1e-9), hi * (1 + 1e-9));
        }
    }

    [Fact]
    public void Compute_FractionalOrderNearInteger_IsContinuous()
    {
        double atThree = SubsampledGaussianRdp.Compute(0.05, 1.1, 3.0);
        double justAbove = SubsampledGaussianRdp.Compute(0.05, 1.1, 3.0 + 1e-7);
        double justBelow = SubsampledGaussianRdp.Compute(0.05, 1.1, 3.0 - 1e-7);

        Assert.Equal(atThree, justAbove, atThree * 1e-5);
        Assert.Equal(atThree, justBelow, atThree * 1e-5);
    }

    [Theory]
    [InlineData(4.0)]
    [InlineData(4.5)]
    public void Compute_SmallSampleRate_MatchesSecondOrderExpansion(double alpha)
    {
        // For q -> 0, A_alpha = 1 + C(alpha, 2) q^2 (exp(1/sigma^2) - 1) + O(q^3), so
        // RDP = log(A_alpha) / (alpha - 1) ~ (alpha / 2) q^2 (exp(1/sigma^2) - 1) (Mironov et al. 2019, Sec. 3.3).
        double q = 1e-4;
        double sigma = 2.0;
        double expected = alpha / 2 * q * q * (Math.Exp(1 / (sigma * sigma)) - 1);

        Assert.Equal(expected, SubsampledGaussianRdp.Compute(q, sigma, alpha), expected * 1e-2);
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.01)]
    [InlineData(0.9)]
    public void Compute_AnyNoiseFromTinyToHuge_FiniteOrInfinite_NeverNegative_NeverRisingWithNoise_NeverAboveThePlainGaussian(double q)
    {
        // sigma 1e8 failed ("Log-space subtraction would go negative"), 1e300 threw "did not converge", and 1e-300 ran for
        // minutes in the fractional series ('privacy epsilon --noise-multiplier 1e-300' ignored SIGTERM meanwhile); near
        // 1e-153 a term overflowed while the plain Gaussian did not (NaN, found by review).
        double[] sigmas = [1e-300, 1e-160, 1e-154, 1e-153, 1e-152, 1e-8, 1e-3, 0.5, 1, 4, 30, 1e3, 1e5, 1e7, 1e8, 1e10, 1e16, 1e160, 1e300];
        IEnumerable<double> orders = RdpOrders.Opacus.Concat(RdpOrders.TensorFlowPrivacy).Distinct();
        foreach (double alpha in orders)
        {
            double previous = double.PositiveInfinity;
            foreach (double sigma in sigmas)
            {
                double rdp = SubsampledGaussianRdp.Compute(q, sigma, alpha);
                double gaussian = alpha / (2 * sigma * sigma);

                Assert.False(double.IsNaN(rdp), $"NaN at q {q}, sigma {sigma}, order {alpha}");
                Assert.True(rdp >= 0, $"{rdp} < 0 at q {q}, sigma {sigma}, order {alpha}");
                Assert.True(rdp <= gaussian, $"{rdp} above the plain Gaussian {gaussian} at q {q}, sigma {sigma}, order {alpha}");
                Assert.True(rdp <= previous * (1 + 1e-9), $"{rdp} at sigma {sigma} above {previous} at less noise (q {q}, order {alpha})");
                previous = rdp;
            }
        }
    }

    [Fact]
    public void GetPrivacySpent_HugeNoise_EpsilonNoMoreThanWithLess_TinyNoise_Infinite()
    {
        static double Epsilon(double sigma)
        {
            var accountant = new RdpAccountant();
            accountant.AddSubsampledGaussian(0.1, sigma, 10);
            return accountant.GetPrivacySpent(1e-5).Epsilon;
        }

        double moderate = Epsilon(1e4);
        Assert.InRange(Epsilon(1e8), 0, moderate);
        Assert.InRange(Epsilon(1e300), 0, moderate);
        Assert.Equal(double.PositiveInfinity, Epsilon(1e-300));
    }

    [Fact]
    public void AddZcdp_RhoAtEveryOrder_EqualsAlphaTimesRho()
    {
        var accountant = new RdpAccountant([2.0, 4.5, 10.0]);
        accountant.AddZcdp(0.25);
        accountant.AddZcdp(0.25);

        Assert.Equal([1.0, 2.25, 5.0], accountant.Rdp);
    }

    [Fact]
    public void AddSubsampledGaussian_HeterogeneousSteps_ComposeAdditively()
    {
        var split = new RdpAccountant();
        split.AddSubsampledGaussian(0.04, 1.5, 1000);
        split.AddSubsampledGaussian(0.01, 0.9, 500);
        split.AddSubsampledGaussian(0.04, 1.5, 1250);

        var first = new RdpAccountant();
        first.AddSubsampledGaussian(0.04, 1.5, 2250);
        var second = new RdpAccountant();
        second.AddSubsampledGaussian(0.01, 0.9, 500);

        for (int i = 0; i < split.Orders.Count; i++)
        {
            double expected = first.Rdp[i] + second.Rdp[i];
            Assert.Equal(expected, split.Rdp[i], Math.Abs(expected) * 1e-12);
        }

        Assert.True(split.GetPrivacySpent(1e-5).Epsilon > first.GetPrivacySpent(1e-5).Epsilon);
    }

    [Fact]
    public void Clone_IsIndependent()
    {
        var accountant = new RdpAccountant();
        accountant.AddSubsampledGaussian(0.04, 1.5, 100);
        RdpAccountant clone = accountant.Clone();
        clone.AddSubsampledGaussian(0.04, 1.5, 100);

        Assert.True(clone.GetPrivacySpent(1e-5).Epsilon > accountant.GetPrivacySpent(1e-5).Epsilon);
    }

    [Fact]
    public void GetPrivacySpent_Nothing_IsZero()
    {
        Assert.Equal(0.0, new RdpAccountant().GetPrivacySpent(1e-5).Epsilon);
    }

    [Fact]
    public void GetPrivacySpent_ImprovedConversion_NeverWorseThanClassic()
    {
        var accountant = new RdpAccountant();
        accountant.AddSubsampledGaussian(0.02, 1.1, 3000);

        Assert.True(accountant.GetPrivacySpent(1e-5, RdpConversion.Improved).Epsilon
                    < accountant.GetPrivacySpent(1e-5, RdpConversion.Classic).Epsilon);
    }

    [Theory]
    [InlineData(0.0, 1.0, 1L)]
    [InlineData(1.5, 1.0, 1L)]
    [InlineData(0.1, 0.0, 1L)]
    [InlineData(0.1, -1.0, 1L)]
    [InlineData(0.1, 1.0, -1L)]
    public void AddSubsampledGaussian_InvalidArguments_Throw(double q, double sigma, long steps)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RdpAccountant().AddSubsampledGaussian(q, sigma, steps));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(double.NaN)]
    public void GetPrivacySpent_InvalidDelta_Throws(double delta)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RdpAccountant().GetPrivacySpent(delta));
    }

    [Fact]
    public void Constructor_OrderNotAboveOne_Throws()
    {
        ArgumentException ex = Assert.Throws<ArgumentException>(() => new RdpAccountant([2.0, 1.0]));
        Assert.Contains("#1", ex.Message, StringComparison.Ordinal);
    }
}
