using System.Runtime.InteropServices;
using SecureFed.Aggregator;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// <see cref="SumFusion"/>: the coordinator fuses the model from the unmasked sum read a slice at a time, in order (the
/// cluster's <see cref="SlicedClusterSum"/>), with W from the tail read first. The fused model must be the whole-vector
/// <see cref="FederatedAveraging.ApplyAggregate(ReadOnlySpan{float}, UpdateCodec, ReadOnlySpan{uint}, double, out long)"/>
/// bit for bit, and the digest the ledger records must be the whole sum's.
/// </summary>
public sealed class SumFusionTests
{
    private const int WeightCap = 100;

    [Theory]
    [InlineData(2500, false, 834)]   // m = 2501 in three slices, the weight slot in the last
    [InlineData(2500, true, 1250)]   // evaluation slots in the tail
    [InlineData(2500, true, 2501)]   // a slice boundary right after the coordinates: the last slice is tail only
    [InlineData(2500, false, 2500)]  // ... and one word long
    [InlineData(2500, true, 7)]      // many short slices, not aligned to the decode blocks
    [InlineData(5000, true, 100000)] // one slice: the single process
    public void SlicesInOrder_EqualWholeVectorFusionAndDigest_BitForBit(int parameters, bool evaluation, int sliceSize)
    {
        UpdateCodec codec = Codec(parameters, evaluation);
        (float[] model, uint[] sum) = Round(codec, seed: parameters + sliceSize);
        float[] expected = FederatedAveraging.ApplyAggregate(model, codec, sum, 0.8, out long weight);
        var layout = new SliceLayout(codec.VectorLength, sliceSize);

        long tailWeight = codec.DecodeTotalWeightFromTail(sum.AsSpan(codec.ParameterCount));
        var fusion = new SumFusion(model, codec, tailWeight, 0.8, digest: true);
        for (int k = 0; k < layout.Count; k++)
        {
            fusion.Add(layout.Offset(k), sum.AsSpan(layout.Offset(k), layout.Length(k)).ToArray());
        }

        (float[] next, string? sha) = fusion.Complete();

        Assert.Equal(weight, tailWeight);
        Assert.Equal(Bits(expected), Bits(next));
        Assert.Equal(ClusterRoundClient.SumDigest(sum), sha);
    }

    [Fact]
    public void WithoutDigest_NoneComputed_SameModel()
    {
        UpdateCodec codec = Codec(1000, evaluation: false);
        (float[] model, uint[] sum) = Round(codec, seed: 4);
        var fusion = new SumFusion(model, codec, codec.DecodeTotalWeight(sum), 1.0, digest: false);

        fusion.Add(0, sum);
        (float[] next, string? sha) = fusion.Complete();

        Assert.Null(sha);
        Assert.Equal(Bits(FederatedAveraging.ApplyAggregate(model, codec, sum, 1.0, out _)), Bits(next));
    }

    [Fact]
    public async Task WholeSum_TailAndOnePiece_AsTheArray()
    {
        uint[] sum = [1, 2, 3, 4, 5];
        UnmaskedSum whole = UnmaskedSum.Whole(sum);
        var pieces = new List<(int, uint[])>();

        uint[] tail = await whole.TailAsync(3, CancellationToken.None);
        await whole.ReadInOrderAsync((offset, words) => pieces.Add((offset, words.ToArray())), CancellationToken.None);

        Assert.Equal([4u, 5u], tail);
        Assert.False(whole.RecordsDigest);
        Assert.Single(pieces);
        Assert.Equal(0, pieces[0].Item1);
        Assert.Equal(sum, pieces[0].Item2);
    }

    [Fact]
    public void OutOfOrderMissingOrExtraWords_Refused()
    {
        UpdateCodec codec = Codec(100, evaluation: false);
        (float[] model, uint[] sum) = Round(codec, seed: 9);
        long weight = codec.DecodeTotalWeight(sum);

        var skipped = new SumFusion(model, codec, weight, 1.0, digest: true);
        Assert.Throws<InvalidOperationException>(() => skipped.Add(50, sum.AsSpan(50)));

        var shortRead = new SumFusion(model, codec, weight, 1.0, digest: true);
        shortRead.Add(0, sum.AsSpan(0, 60));
        Assert.Throws<InvalidOperationException>(() => shortRead.Complete());
        Assert.Throws<InvalidOperationException>(() => shortRead.Add(60, new uint[sum.Length - 59]));

        var zero = Assert.Throws<RoundAbortedException>(() => new SumFusion(model, codec, 0, 1.0, digest: false));
        Assert.Contains("weight is 0", zero.Reason, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new SumFusion(model[1..], codec, weight, 1.0, digest: false));
    }

    [Theory]
    [InlineData(2500, 834)]
    [InlineData(2500, 7)]
    [InlineData(2500, 100000)]
    public void RunByRun_EqualsWholeModelFusion_BitForBit(int parameters, int run)
    {
        UpdateCodec codec = Codec(parameters, evaluation: true);
        (float[] model, uint[] sum) = Round(codec, seed: parameters + run);
        long weight = codec.DecodeTotalWeightFromTail(sum.AsSpan(codec.ParameterCount));
        var whole = new SumFusion(model, codec, weight, 0.8, digest: true);
        whole.Add(0, sum);
        (float[] expected, string? expectedSha) = whole.Complete();

        var runs = new SumFusion(codec, weight, 0.8, digest: true, optimizer: null);
        float[] next = new float[parameters];
        for (int offset = 0; offset < sum.Length; offset += Math.Min(run, sum.Length - offset))
        {
            int length = Math.Min(run, sum.Length - offset);
            int coordinates = runs.CoordinatesIn(offset, length);
            int at = Math.Min(offset, parameters); // a run of the tail has no coordinates (and may start past the model)
            runs.Add(offset, sum.AsSpan(offset, length), model.AsSpan(at, coordinates).ToArray(), next.AsSpan(at, coordinates));
        }

        Assert.Equal(expectedSha, runs.CompleteRuns());
        Assert.Equal(Bits(expected), Bits(next));
    }

    [Fact]
    public void RunByRunAndWholeModel_MisuseRefused()
    {
        UpdateCodec codec = Codec(100, evaluation: false);
        (float[] model, uint[] sum) = Round(codec, seed: 10);
        long weight = codec.DecodeTotalWeight(sum);
        var runs = new SumFusion(codec, weight, 1.0, digest: false, optimizer: null);
        var whole = new SumFusion(model, codec, weight, 1.0, digest: false);
        float[] next = new float[100];

        Assert.Throws<InvalidOperationException>(() => runs.Add(0, sum));
        Assert.Throws<InvalidOperationException>(() => whole.Add(0, sum, model, next));
        Assert.Throws<ArgumentException>(() => runs.Add(0, sum.AsSpan(0, 50), model.AsSpan(0, 49), next.AsSpan(0, 50)));
        Assert.Throws<ArgumentException>(() => runs.Add(0, sum.AsSpan(0, 50), model.AsSpan(0, 50), next.AsSpan(0, 49)));
        Assert.Throws<ArgumentException>(() => runs.Add(0, sum.AsSpan(0, 50), next.AsSpan(0, 50), next.AsSpan(25, 50)));
        runs.Add(0, sum.AsSpan(0, 100), model, next);
        Assert.Throws<ArgumentException>(() => runs.Add(100, sum.AsSpan(100), model.AsSpan(0, 1), next.AsSpan(0, 1))); // the tail has no coordinates
        runs.Add(100, sum.AsSpan(100), [], []);
        Assert.Throws<InvalidOperationException>(() => runs.Complete());
        Assert.Null(runs.CompleteRuns());
        Assert.Equal(Bits(FederatedAveraging.ApplyAggregate(model, codec, sum, 1.0, out _)), Bits(next));
    }

    private static UpdateCodec Codec(int parameters, bool evaluation) =>
        UpdateCodec.Plan(parameters, clipBound: 1.0, cohortSize: 5, noiseHeadroom: 0.5, WeightCap, evaluation: evaluation ? EvaluationLayout.Create(["PER", "LOC"], 1000) : null);

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
        for (int i = codec.ParameterCount + 1; i < sum.Length; i++)
        {
            sum[i] = (uint)random.Next(0, 100);
        }

        return (model, sum);
    }

    private static int[] Bits(float[] values) => MemoryMarshal.Cast<float, int>(values).ToArray();
}
