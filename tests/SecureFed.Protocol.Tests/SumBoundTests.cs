using SecureFed.Crypto;
using SecureFed.Privacy;
using SecureFed.Testing;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// <see cref="SumBound"/>: honest sums (clipped updates, weights, the planned discrete Gaussian, stochastic rounding, all
/// through <see cref="FederatedAveraging.PrivatizeUpdate(float[], long, UpdateCodec, double, double, IRandomSource, Span{uint})"/>)
/// stay within it; a wrapped weight slot or a coordinate far outside the clip does not.
/// </summary>
public sealed class SumBoundTests
{
    /// <summary>n sites' inputs summed mod 2^32, each an update of norm exactly S (the clip) along one shared direction, the worst case for ‖s‖.</summary>
    private static uint[] HonestSum(UpdateCodec codec, double clip, double sigmaSite, long[] examples, float[] direction, IRandomSource random)
    {
        uint[] sum = new uint[codec.VectorLength];
        uint[] input = new uint[codec.VectorLength];
        foreach (long e in examples)
        {
            float[] delta = (float[])direction.Clone();
            FederatedAveraging.PrivatizeUpdate(delta, e, codec, clip, sigmaSite, random, input);
            for (int i = 0; i < sum.Length; i++)
            {
                sum[i] += input[i];
            }
        }

        return sum;
    }

    /// <summary>A direction of norm <paramref name="norm"/> (a little over, so that the clip acts: the update is exactly at S).</summary>
    private static float[] Direction(int d, double norm, Random rng, bool spike)
    {
        float[] v = new float[d];
        if (spike)
        {
            v[0] = (float)(norm * 1.01); // everything in one coordinate: the worst case for the coordinate bound
            return v;
        }

        double squares = 0;
        for (int i = 0; i < d; i++)
        {
            v[i] = (float)(rng.NextDouble() - 0.5);
            squares += (double)v[i] * v[i];
        }

        for (int i = 0; i < d; i++)
        {
            v[i] = (float)(v[i] * norm * 1.01 / Math.Sqrt(squares));
        }

        return v;
    }

    [Fact]
    public void CheckSum_HonestRoundsWithPlannedNoise_NeverExceedTheBound()
    {
        // Property over many seeded trials: random d, n, t, clip, weights (many at the cap), the planned σ; updates at the
        // clip along one shared direction (the honest sum's largest possible signal).
        var rng = new Random(20260);
        double worstNorm = 0, worstCoordinate = 0;
        for (int trial = 0; trial < 300; trial++)
        {
            int d = rng.Next(1, 600);
            int n = rng.Next(1, 7);
            int t = rng.Next(1, n + 1);
            double clip = Math.Pow(10, rng.NextDouble() * 4 - 2);
            int cap = rng.Next(1, 2000);
            double z = trial % 3 == 0 ? 0 : 0.05 + rng.NextDouble();
            (UpdateCodec codec, DistributedDpPlan plan) = FederatedAveraging.PlanRound(d, clip, n, t, z == 0 ? 1 : z, cap);
            double sigma = z == 0 ? 0 : plan.SigmaSite;
            long[] examples = [.. Enumerable.Range(0, n).Select(_ => rng.Next(3) == 0 ? (long)rng.Next(1, cap + 1) : cap * 2L)];
            using var random = new DeterministicRandomSource(trial);
            uint[] sum = HonestSum(codec, clip, sigma, examples, Direction(d, clip, rng, spike: trial % 2 == 0), random);

            Assert.Null(codec.CheckTotalWeight(codec.DecodeTotalWeight(sum), n));
            Assert.Null(SumBound.CheckSum(codec, sum, n, sigma));
            var bound = new SumBound(codec);
            bound.Add(0, sum);
            (double normLimit, double coordinateLimit) = SumBound.Limits(codec, codec.DecodeTotalWeight(sum), n, sigma);
            worstNorm = Math.Max(worstNorm, Math.Sqrt((double)bound.SquaredNorm) / normLimit);
            worstCoordinate = Math.Max(worstCoordinate, bound.LargestCoordinate / coordinateLimit);
        }

        Assert.InRange(worstNorm, 0.5, 1.0); // the bound is not vacuous: some honest sums come near it
        Assert.InRange(worstCoordinate, 0.5, 1.0);
    }

    [Fact]
    public void CheckSum_NoNoiseUpdatesAtTheClip_PassAtTheEdge()
    {
        // σ = 0, four sites at the cap with the same update of norm exactly S: ‖U‖ = W/cap·S up to rounding, the bound's edge.
        (UpdateCodec codec, _) = FederatedAveraging.PlanRound(200, 2.0, 4, 3, 1, 100);
        using var random = new DeterministicRandomSource(7);
        uint[] sum = HonestSum(codec, 2.0, 0, [100, 100, 100, 100], Direction(200, 2.0, new Random(1), spike: false), random);
        var bound = new SumBound(codec);
        bound.Add(0, sum);
        (double normLimit, _) = SumBound.Limits(codec, 400, 4, 0);

        Assert.Null(bound.Check(400, 4, 0));
        Assert.InRange(Math.Sqrt((double)bound.SquaredNorm) / normLimit, 0.99, 1.0);
    }

    [Fact]
    public void CheckSum_WeightSlotWrappedToOne_AbortsOnTheNorm()
    {
        // Updates dominate (no noise): a site that puts 2^32 − (W_honest − 1) in its slot makes W = 1; ‖U‖ stays
        // ≈ W_honest/cap·S while the bound shrinks to ≈ S/cap.
        (UpdateCodec codec, _) = FederatedAveraging.PlanRound(200, 2.0, 4, 3, 1, 1000);
        using var random = new DeterministicRandomSource(8);
        uint[] sum = HonestSum(codec, 2.0, 0, [100, 200, 300], Direction(200, 2.0, new Random(2), spike: false), random);
        sum[codec.ParameterCount] += unchecked((uint)-(600 - 1)); // the hostile fourth site's weight slot

        Assert.Equal(1, codec.DecodeTotalWeight(sum));
        Assert.Contains("below the 4 contributors", codec.CheckTotalWeight(1, 4), StringComparison.Ordinal);
        string? reason = SumBound.CheckSum(codec, sum, 4, 0);
        Assert.NotNull(reason);
        Assert.Contains("the decoded sum's norm", reason, StringComparison.Ordinal);
        Assert.Contains("the model is unchanged", reason, StringComparison.Ordinal);

        // W lowered only to the contributors' minimum (passes CheckTotalWeight) is still caught here.
        sum[codec.ParameterCount] += 3;
        Assert.Null(codec.CheckTotalWeight(4, 4));
        Assert.Contains("the decoded sum's norm", SumBound.CheckSum(codec, sum, 4, 0), StringComparison.Ordinal);
    }

    [Fact]
    public void CheckSum_HugeCoordinate_AbortsOnTheCoordinate()
    {
        // The reliability harness's round: d = 2000, S = 10, z = 0.5, n = 4, t = 3, cap 1000; three honest sites, the
        // fourth sends weight 0 and 2^30 in coordinate 0 (≈ 83 update units, 8 clips, 14 noise standard deviations).
        (UpdateCodec codec, DistributedDpPlan plan) = FederatedAveraging.PlanRound(2000, 10, 4, 3, 0.5, 1000);
        using var random = new DeterministicRandomSource(9);
        uint[] sum = HonestSum(codec, 10, plan.SigmaSite, [100, 200, 300], Direction(2000, 0.5, new Random(3), spike: false), random);
        uint[] noiseOnly = new uint[codec.VectorLength];
        FederatedAveraging.PrivatizeUpdate(new float[2000], 0, codec, 10, plan.SigmaSite, random, noiseOnly);
        for (int i = 0; i < sum.Length; i++)
        {
            sum[i] += noiseOnly[i];
        }

        Assert.Null(SumBound.CheckSum(codec, sum, 4, plan.SigmaSite));
        sum[0] += 1u << 30;

        string? reason = SumBound.CheckSum(codec, sum, 4, plan.SigmaSite);
        Assert.NotNull(reason);
        Assert.StartsWith("coordinate 0 of the decoded sum", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void CheckSum_LargeEditSpreadOverCoordinates_AbortsOnTheNorm()
    {
        // A lie of norm 40 clips spread thinly (no coordinate stands out) still shows in the norm.
        (UpdateCodec codec, DistributedDpPlan plan) = FederatedAveraging.PlanRound(2000, 10, 4, 3, 0.5, 1000);
        using var random = new DeterministicRandomSource(10);
        uint[] sum = HonestSum(codec, 10, plan.SigmaSite, [100, 200, 300, 400], Direction(2000, 0.5, new Random(4), spike: false), random);
        Assert.Null(SumBound.CheckSum(codec, sum, 4, plan.SigmaSite));
        uint each = (uint)Math.Round(400 / Math.Sqrt(2000) * codec.Scale);
        for (int i = 0; i < 2000; i++)
        {
            sum[i] += each;
        }

        Assert.StartsWith("the decoded sum's norm", SumBound.CheckSum(codec, sum, 4, plan.SigmaSite), StringComparison.Ordinal);
    }

    /// <summary>
    /// What one site can still send within the bound (threat model C7, PROTOCOL.md "The sum bound"), in the reliability
    /// tests' round (d = 2000, S = 10, z = 0.5, n = 4, t = 3, weights 100 + 200 + 300 of cap 1000 and the site's own 100):
    /// a site that adds none of its noise and sends a vector orthogonal to the other three inputs' sum passes with a norm
    /// of about √(B² − ‖U_others‖²), which the docs once put at the norm slack B − ‖U_honest‖ (≈ 34): here more than four
    /// times that and over 100 times the site's own clipped, weighted share ω·S = 1 (update units). In high dimension a
    /// random direction is nearly orthogonal to the honest sum, so no knowledge of the other inputs is needed for most of it.
    /// </summary>
    [Fact]
    public void CheckSum_OneSiteWithoutNoiseOrthogonalToTheOthers_PassesFarBeyondTheNormSlack()
    {
        const int D = 2000;
        (UpdateCodec codec, DistributedDpPlan plan) = FederatedAveraging.PlanRound(D, 10, 4, 3, 0.5, 1000);
        double sigma = plan.SigmaSite;
        using var random = new DeterministicRandomSource(12);
        var rng = new Random(6);
        uint[] others = HonestSum(codec, 10, sigma, [100, 200, 300], Direction(D, 10, rng, spike: false), random);
        uint[] honest = HonestSum(codec, 10, sigma, [100], Direction(D, 10, rng, spike: false), random);
        for (int i = 0; i < honest.Length; i++)
        {
            honest[i] += others[i]; // the same round with an honest fourth site
        }

        double scale = codec.Scale;
        double bound = SumBound.Limits(codec, 700, 4, sigma).Norm;
        double normSlack = bound - Norm(honest);
        double[] u = [.. others.Take(D).Select(w => (double)ModularVector.ToSigned(w, 32))];
        double uu = u.Sum(x => x * x);
        double[] r = [.. Enumerable.Range(0, D).Select(_ => rng.NextDouble() - 0.5)];
        double ru = r.Zip(u, (a, b) => a * b).Sum();
        for (int i = 0; i < D; i++)
        {
            r[i] -= ru / uu * u[i];
        }

        double rr = Math.Sqrt(r.Sum(x => x * x));
        double length = 0.97 * Math.Sqrt((bound * bound) - uu); // quantized units
        uint[] sum = (uint[])others.Clone();
        for (int i = 0; i < D; i++)
        {
            sum[i] += unchecked((uint)(long)Math.Round(r[i] / rr * length));
        }

        sum[D] += 100; // the weight it declares

        Assert.Null(codec.CheckTotalWeight(codec.DecodeTotalWeight(sum), 4));
        Assert.Null(SumBound.CheckSum(codec, sum, 4, sigma));
        Assert.True(length > 4 * normSlack, $"edit {length / scale:G4} against the norm slack {normSlack / scale:G4} (update units)");
        Assert.True(length / scale > 100 * (100.0 / 1000 * 10), $"edit {length / scale:G4} against the site's own share 1");

        static double Norm(uint[] words) => Math.Sqrt(words.Take(D).Select(w => (double)ModularVector.ToSigned(w, 32)).Sum(x => x * x));
    }

    [Fact]
    public void Add_RunsCutAnywhere_SameExactResult()
    {
        (UpdateCodec codec, DistributedDpPlan plan) = FederatedAveraging.PlanRound(1000, 1, 3, 2, 0.7, 50, EvaluationLayout.Create([], 100));
        using var random = new DeterministicRandomSource(11);
        uint[] sum = HonestSum(codec, 1, plan.SigmaSite, [10, 20, 30], Direction(1000, 1, new Random(5), spike: false), random);
        sum[codec.VectorLength - 1] = uint.MaxValue; // tail words (evaluation slots) do not count
        var whole = new SumBound(codec);
        whole.Add(0, sum);
        var cut = new SumBound(codec);
        int at = 0;
        foreach (int length in new[] { 1, 333, 600, 66, sum.Length - 1000 })
        {
            cut.Add(at, sum.AsSpan(at, length));
            at += length;
        }

        Assert.Equal(whole.SquaredNorm, cut.SquaredNorm);
        Assert.Equal(whole.LargestCoordinate, cut.LargestCoordinate);
        Assert.Equal(whole.Check(60, 3, plan.SigmaSite), cut.Check(60, 3, plan.SigmaSite));
        Assert.Throws<InvalidOperationException>(() => new SumBound(codec).Add(5, sum));
        Assert.Throws<InvalidOperationException>(() => new SumBound(codec).Check(60, 3, 0));
    }
}
