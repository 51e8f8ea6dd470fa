using System.Runtime.InteropServices;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// <see cref="FederatedAveraging.ApplyAggregate(ReadOnlySpan{float}, UpdateCodec, ReadOnlySpan{uint}, double, out long)"/>
/// decodes the sum a block at a time and can run slice by slice; both must give the fused model of the whole-vector
/// decode (<see cref="UpdateCodec.Decode"/>, then the update rule) bit for bit.
/// </summary>
public sealed class FederatedAveragingTests
{
    private const int WeightCap = 100;

    private static readonly ScoringDeclaration[] Declarations = [.. Enumerable.Range(1, 5).Select(i => new ScoringDeclaration($"site-{i}", true))];

    [Theory]
    [InlineData(1, false, 1.0)]
    [InlineData(511, false, 1.0)]
    [InlineData(512, false, 0.7)]
    [InlineData(513, true, 1.0)]
    [InlineData(4097, true, 0.3)]
    public void ApplyAggregate_AnyLength_EqualsWholeVectorDecodeBitForBit(int parameters, bool evaluation, double learningRate)
    {
        UpdateCodec codec = Codec(parameters, evaluation);
        (float[] model, uint[] sum) = Round(codec, seed: parameters);

        float[] next = FederatedAveraging.ApplyAggregate(model, codec, sum, learningRate, out long weight);

        float[] expected = WholeVectorReference(model, codec, sum, learningRate, out long expectedWeight);
        Assert.Equal(expectedWeight, weight);
        Assert.Equal(Bits(expected), Bits(next));
        Assert.NotEqual(Bits(model), Bits(next));
    }

    [Theory]
    [InlineData(2500, 1000)]
    [InlineData(2500, 513)]
    [InlineData(7, 3)]
    public void ApplyAggregate_SliceBySlice_EqualsWholeVectorDecodeBitForBit(int parameters, int sliceSize)
    {
        UpdateCodec codec = Codec(parameters, evaluation: true);
        (float[] model, uint[] sum) = Round(codec, seed: sliceSize);
        long weight = codec.DecodeTotalWeight(sum);
        float[] next = new float[parameters];

        for (int offset = 0; offset < parameters; offset += sliceSize)
        {
            int length = Math.Min(sliceSize, parameters - offset);
            FederatedAveraging.ApplyAggregate(model.AsSpan(offset, length), codec, sum.AsSpan(offset, length), weight, 0.9, next.AsSpan(offset, length));
        }

        Assert.Equal(Bits(WholeVectorReference(model, codec, sum, 0.9, out _)), Bits(next));
    }

    [Fact]
    public void PlanRound_RandomParameterSets_EveryOnePlansAndItsWorstCaseSumFitsIn32Bits()
    {
        // Property: small clip bounds put the closed-form scale at the rounding edge, where the ceilings of the per-input
        // bound and the headroom add n + 1 units it does not count (a third of these sets were refused by the planner's
        // own cross-check before the fix, so a federation with such a clip could not start a round).
        var rng = new Random(20260);
        int edge = 0;
        for (int trial = 0; trial < 2000; trial++)
        {
            int d = rng.Next(1, 600);
            int n = rng.Next(1, 60);
            int t = rng.Next(1, n + 1);
            double clip = Math.Pow(10, (rng.NextDouble() * 6) - 3);
            int cap = rng.Next(1, 2000);
            double z = trial % 3 == 0 ? 1 : 0.05 + rng.NextDouble();

            (UpdateCodec codec, _) = FederatedAveraging.PlanRound(d, clip, n, t, z, cap);

            double headroom = SecureFed.Privacy.DistributedDp.HeadroomStandardDeviations * z * clip * 1.1 * Math.Sqrt((double)n / t);
            double closedForm = Math.Floor((int.MaxValue - n) / ((n * clip) + headroom));
            long worst = (n * (long)Math.Ceiling((clip * codec.Scale) + 1)) + (long)Math.Ceiling(headroom * codec.Scale);
            Assert.InRange(worst, 0, int.MaxValue);
            Assert.InRange(codec.Scale, Math.Max(1, closedForm - (((2.0 * n) + 1) / ((n * clip) + headroom)) - 1), closedForm);
            edge += codec.Scale < closedForm ? 1 : 0;
        }

        Assert.InRange(edge, 100, 1900); // the edge is exercised, and most sets keep the closed form
    }

    [Theory]
    [InlineData(1e12)]
    [InlineData(1e300)]
    [InlineData(double.MaxValue)]
    public void PlanRound_SiteNoiseTooLargeForTheWords_SaysToLowerTheNoise(double siteNoiseMultiplier)
    {
        // 'demo --site-noise 1e308' made the headroom overflow to infinity, and the aggregator failed with "The noise
        // headroom must be non-negative and finite. (Parameter 'noiseHeadroom')" instead of what 1e12 already said.
        var ex = Assert.Throws<InvalidOperationException>(() => FederatedAveraging.PlanRound(1000, 30, 3, 2, siteNoiseMultiplier, 10_000));

        Assert.Contains("do not fit in 32-bit words; lower the clip bound or the noise", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(150u, 150L)]
    [InlineData(0u, 0L)]
    [InlineData(uint.MaxValue, -1L)]
    [InlineData(0x8000_0000u, -2147483648L)]
    public void DecodeTotalWeight_WeightSlot_SameAsDecode(uint slot, long expected)
    {
        UpdateCodec codec = Codec(10, evaluation: true);
        (_, uint[] sum) = Round(codec, seed: 3);
        sum[codec.ParameterCount] = slot;

        Assert.Equal(expected, codec.DecodeTotalWeight(sum));
        Assert.Equal(codec.Decode(sum).TotalWeight, codec.DecodeTotalWeight(sum));
        Assert.Throws<ArgumentException>(() => codec.DecodeTotalWeight(sum.AsSpan(1)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TailDecoders_SameAsWholeSumDecoders(bool evaluation)
    {
        UpdateCodec codec = Codec(300, evaluation);
        (_, uint[] sum) = Round(codec, seed: 11);
        uint[] tail = sum[codec.ParameterCount..];

        Assert.Equal(codec.VectorLength - codec.ParameterCount, codec.TailLength);
        Assert.Equal(codec.DecodeTotalWeight(sum), codec.DecodeTotalWeightFromTail(tail));
        FederatedEvaluation? whole = FederatedAveraging.Evaluate(codec, sum, Declarations, 2, out string? wholeNote);
        FederatedEvaluation? fromTail = FederatedAveraging.EvaluateTail(codec, tail, Declarations, 2, out string? tailNote);
        Assert.Equal(wholeNote, tailNote);
        Assert.Equal(whole is null, fromTail is null);
        if (whole is not null)
        {
            Assert.Equal(whole.Evaluators, fromTail!.Evaluators);
            Assert.Equal(whole.Overall, fromTail.Overall);
            Assert.Equal(whole.PerType.Keys, fromTail.PerType.Keys);
            Assert.Equal(whole.F1, fromTail.F1);
        }

        Assert.Throws<ArgumentException>(() => codec.DecodeTotalWeightFromTail(sum));
        Assert.Throws<ArgumentException>(() => codec.DecodeEvaluationFromTail(tail.AsSpan(1), 5, out _));
    }

    [Fact]
    public void ApplyAggregate_NonFiniteCoordinateInALaterBlock_AbortsTheRound()
    {
        UpdateCodec codec = Codec(2000, evaluation: false);
        (float[] model, uint[] sum) = Round(codec, seed: 5);
        Array.Clear(sum, 0, codec.ParameterCount);
        sum[1500] = 1000; // the only non-zero update: with this learning rate it alone leaves the float range

        var whole = Assert.Throws<RoundAbortedException>(() => FederatedAveraging.ApplyAggregate(model, codec, sum, 1e300, out _));
        var sliced = Assert.Throws<RoundAbortedException>(() =>
            FederatedAveraging.ApplyAggregate(model.AsSpan(1000, 1000), codec, sum.AsSpan(1000, 1000), codec.DecodeTotalWeight(sum), 1e300, new float[1000]));
        float[] before = new float[1000];
        FederatedAveraging.ApplyAggregate(model.AsSpan(0, 1000), codec, sum.AsSpan(0, 1000), codec.DecodeTotalWeight(sum), 1e300, before);

        Assert.Contains("not finite", whole.Reason, StringComparison.Ordinal);
        Assert.Contains("not finite", sliced.Reason, StringComparison.Ordinal);
        Assert.Equal(Bits(model[..1000]), Bits(before)); // the blocks before it are finite (zero update)
    }

    [Fact]
    public void ApplyAggregate_NoWeightOrMismatchedRun_Refused()
    {
        UpdateCodec codec = Codec(100, evaluation: false);
        (float[] model, uint[] sum) = Round(codec, seed: 6);

        var zero = Assert.Throws<RoundAbortedException>(() => FederatedAveraging.ApplyAggregate(model, codec, sum.AsSpan(0, 100), 0, 1.0, new float[100]));
        Assert.Contains("weight is 0", zero.Reason, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => FederatedAveraging.ApplyAggregate(model, codec, sum.AsSpan(0, 99), 10, 1.0, new float[100]));
        Assert.Throws<ArgumentException>(() => FederatedAveraging.ApplyAggregate(model, codec, sum.AsSpan(0, 100), 10, 1.0, new float[99]));
        Assert.Throws<ArgumentException>(() => codec.DecodeCoordinates(new uint[101], new double[101]));
    }

    /// <summary>The rule as it was before the block-wise decode: the whole sum decoded to a double[] first.</summary>
    private static float[] WholeVectorReference(float[] baseModel, UpdateCodec codec, uint[] sum, double serverLearningRate, out long totalWeight)
    {
        (double[] updateSum, long weight) = codec.Decode(sum);
        totalWeight = weight;
        double omegaSum = (double)weight / codec.WeightCap;
        float[] next = new float[baseModel.Length];
        for (int i = 0; i < next.Length; i++)
        {
            next[i] = (float)(baseModel[i] + (serverLearningRate * updateSum[i] / omegaSum));
        }

        return next;
    }

    private static UpdateCodec Codec(int parameters, bool evaluation) =>
        UpdateCodec.Plan(parameters, clipBound: 1.0, cohortSize: 5, noiseHeadroom: 0.5, WeightCap, evaluation: evaluation ? EvaluationLayout.Create(["PER", "LOC"], 1000) : null);

    /// <summary>A base model and a sum of five sites' quantized updates (any words mod 2^32), with a positive weight.</summary>
    private static (float[] Model, uint[] Sum) Round(UpdateCodec codec, int seed)
    {
        var random = new Random(seed);
        float[] model = new float[codec.ParameterCount];
        for (int i = 0; i < model.Length; i++)
        {
            model[i] = (float)((random.NextDouble() * 2) - 1);
        }

        uint[] sum = new uint[codec.VectorLength];
        for (int i = 0; i < codec.ParameterCount; i++)
        {
            sum[i] = (uint)random.NextInt64(0, 1L << 32);
        }

        sum[codec.ParameterCount] = 3 * WeightCap / 2;
        for (int i = codec.EvaluationOffset; i < sum.Length; i++)
        {
            sum[i] = (uint)random.Next(0, 100);
        }

        return (model, sum);
    }

    private static int[] Bits(float[] values) => MemoryMarshal.Cast<float, int>(values).ToArray();
}
