using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Protocol;

namespace SecureFed.Federation.Tests.Persistence;

/// <summary>
/// <see cref="StoredModelFusion"/>: the aggregator fuses the next model block by block, the base model read from a stream
/// (the round store) and the next model written to a stream (the staging file), never holding either whole. The bytes
/// written must be the in-memory <see cref="SumFusion"/>'s model bit for bit, for any cut of the sum into runs, with
/// FedAvg and with a stateful rule; a base whose bytes are not its recorded size or SHA-256 must stop the fusion with
/// the reason before anything of the next model is used.
/// </summary>
public sealed class StoredModelFusionTests
{
    private const int WeightCap = 1000;

    public static TheoryData<int, int, ServerOptimizerKind> Cuts => new()
    {
        { 40_000, int.MaxValue, ServerOptimizerKind.Average }, // one run: the single process
        { 40_000, 16_384, ServerOptimizerKind.Average },       // the cluster's pieces, the block size
        { 40_000, 7, ServerOptimizerKind.Average },            // short runs, a block per run
        { 40_000, 39_999, ServerOptimizerKind.Average },       // a run ending one coordinate before the tail
        { 16_384, 16_385, ServerOptimizerKind.Average },       // d is exactly one block; a run crossing into the tail
        { 40_000, 5_000, ServerOptimizerKind.Adam },
        { 40_000, int.MaxValue, ServerOptimizerKind.Momentum },
    };

    [Theory]
    [MemberData(nameof(Cuts))]
    public void RunsOfAnyCut_NextBytesAndDigestsEqualInMemoryFusion_BitForBit(int parameters, int run, ServerOptimizerKind kind)
    {
        UpdateCodec codec = Codec(parameters);
        float[] model = Model(parameters, seed: 3);
        uint[] sum = Sum(codec, seed: parameters + run);
        long weight = codec.DecodeTotalWeightFromTail(sum.AsSpan(codec.ParameterCount));
        ServerOptimizerOptions options = new() { Kind = kind, LearningRate = 0.02, Tau = 1e-7 };
        ServerOptimizer? inMemoryRule = kind == ServerOptimizerKind.Average ? null : new ServerOptimizer(options);
        ServerOptimizer? streamedRule = kind == ServerOptimizerKind.Average ? null : new ServerOptimizer(options);

        var inMemory = new SumFusion(model, codec, weight, 0.8, digest: true, inMemoryRule);
        inMemory.Add(0, sum);
        (float[] expected, string? expectedSum) = inMemory.Complete();

        using var baseBytes = new MemoryStream(ModelState.ToBytes(model));
        using var next = new MemoryStream();
        string nextSha;
        string? sumSha;
        using (var fusion = new StoredModelFusion(new SumFusion(codec, weight, 0.8, digest: true, streamedRule), baseBytes, ModelState.Digest(model), "model version 0", next))
        {
            for (int offset = 0; offset < sum.Length; offset += Math.Min(run, sum.Length - offset))
            {
                fusion.Add(offset, sum.AsSpan(offset, Math.Min(run, sum.Length - offset)));
            }

            (nextSha, sumSha) = fusion.Complete();
            Assert.Equal(parameters * 4L, fusion.NextBytesWritten);
        }

        Assert.Equal(ModelState.ToBytes(expected), next.ToArray());
        Assert.Equal(ModelState.Digest(expected), nextSha);
        Assert.Equal(expectedSum, sumSha);
        Assert.NotEqual(ModelState.ToBytes(model), next.ToArray());
        if (inMemoryRule is not null)
        {
            Assert.Equal(inMemoryRule.FirstMoment.ToArray(), streamedRule!.FirstMoment.ToArray());
        }
    }

    [Fact]
    public void BaseTamperedShortOrLong_RefusedNamingTheProblem()
    {
        UpdateCodec codec = Codec(20_000);
        float[] model = Model(20_000, seed: 5);
        uint[] sum = Sum(codec, seed: 6);
        long weight = codec.DecodeTotalWeight(sum);
        byte[] bytes = ModelState.ToBytes(model);
        string sha = ModelState.Digest(model);
        byte[] flipped = (byte[])bytes.Clone();
        flipped[77_777] ^= 0x01;

        var tampered = Assert.Throws<InvalidDataException>(() => Fuse(flipped));
        var shorter = Assert.Throws<InvalidDataException>(() => Fuse(bytes[..^4]));
        var longer = Assert.Throws<InvalidDataException>(() => Fuse([.. bytes, 0, 0, 0, 0]));

        Assert.Contains($"model version 4 is corrupt: its recorded SHA-256 is {sha} but its bytes hash to", tampered.Message, StringComparison.Ordinal);
        Assert.Contains("the next model is not stored", tampered.Message, StringComparison.Ordinal);
        Assert.Contains("model version 4 ends after 79996 bytes; the model has 80000", shorter.Message, StringComparison.Ordinal);
        Assert.Contains("model version 4 holds more than the model's 80000 bytes", longer.Message, StringComparison.Ordinal);
        Assert.Equal(Fuse(bytes).Length, bytes.Length);

        byte[] Fuse(byte[] baseBytes)
        {
            using var next = new MemoryStream();
            using var fusion = new StoredModelFusion(new SumFusion(codec, weight, 1.0, digest: false, optimizer: null), new MemoryStream(baseBytes), sha, "model version 4", next);
            fusion.Add(0, sum);
            _ = fusion.Complete();
            return next.ToArray();
        }
    }

    [Fact]
    public void MissingWords_CompleteRefused()
    {
        UpdateCodec codec = Codec(1000);
        float[] model = Model(1000, seed: 8);
        uint[] sum = Sum(codec, seed: 9);
        using var fusion = new StoredModelFusion(new SumFusion(codec, codec.DecodeTotalWeight(sum), 1.0, digest: false, optimizer: null), new MemoryStream(ModelState.ToBytes(model)), ModelState.Digest(model), "model version 0", new MemoryStream());

        fusion.Add(0, sum.AsSpan(0, 999));

        Assert.Throws<InvalidOperationException>(() => fusion.Complete());
    }

    private static UpdateCodec Codec(int parameters) =>
        UpdateCodec.Plan(parameters, clipBound: 1.0, cohortSize: 3, noiseHeadroom: 0.5, WeightCap, evaluation: EvaluationLayout.Create(["Disease"], 1000));

    private static float[] Model(int parameters, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, parameters).Select(_ => (float)((random.NextDouble() * 2) - 1))];
    }

    /// <summary>A plausible unmasked sum: small signed coordinates mod 2^b, weight W, some evaluation counts.</summary>
    private static uint[] Sum(UpdateCodec codec, int seed)
    {
        var random = new Random(seed);
        uint mask = codec.BitWidth == 32 ? uint.MaxValue : (1u << codec.BitWidth) - 1;
        uint[] sum = new uint[codec.VectorLength];
        for (int i = 0; i < codec.ParameterCount; i++)
        {
            sum[i] = (uint)(long)Math.Round((random.NextDouble() - 0.5) * 0.05 * codec.Scale) & mask;
        }

        sum[codec.ParameterCount] = 2 * WeightCap;
        for (int i = codec.ParameterCount + 1; i < sum.Length; i++)
        {
            sum[i] = (uint)random.Next(0, 50);
        }

        return sum;
    }
}
