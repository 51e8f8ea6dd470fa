using System.Runtime.InteropServices;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Protocol;

namespace SecureFed.Federation.Tests;

/// <summary>
/// The aggregator's update rule (<see cref="ServerUpdateRule"/>, <see cref="SumFusion"/> with a
/// <see cref="ServerOptimizer"/>): the product's momentum and adam steps, taken run by run while the sum is read, give
/// the experiment's model (<see cref="FederatedAveraging.AverageUpdate"/> then <see cref="ServerOptimizer.Step"/> on the
/// whole vector) bit for bit over several rounds; average is FedAvg's <see cref="FederatedAveraging.ApplyAggregate(ReadOnlySpan{float}, UpdateCodec, ReadOnlySpan{uint}, double, out long)"/>
/// as before; the moments are stored with their model version and survive a restart.
/// </summary>
public sealed class ServerUpdateRuleTests : IDisposable
{
    private const int WeightCap = 1000;
    private const int Rounds = 5;
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<ServerOptimizerKind, double, int> Rules => new()
    {
        { ServerOptimizerKind.Adam, 0, 1 },
        { ServerOptimizerKind.Adam, 0, 7 },
        { ServerOptimizerKind.Adam, 0, 512 },
        { ServerOptimizerKind.Adam, 0, 513 },
        { ServerOptimizerKind.Adam, 0, 1_000_000 }, // one run: the single process
        { ServerOptimizerKind.Adam, 2e-4, 300 },    // DP-AdamBC's correction (its bias correction needs the step count)
        { ServerOptimizerKind.Momentum, 0, 333 },
    };

    [Theory]
    [InlineData(ServerOptimizerKind.Adam)]
    [InlineData(ServerOptimizerKind.Momentum)]
    public void Open_RuleWithMomentsForAModelOverWhatTheRoundStoreHolds_RefusedAtStartUpNamingTheLimit(ServerOptimizerKind kind)
    {
        using AggregatorStore store = AggregatorStore.Open(_dir.Combine("limit.db"));
        const int Parameters = ServerUpdateRule.MaxParametersWithMoments + 1;

        var refused = Assert.Throws<InvalidOperationException>(() => ServerUpdateRule.Open(Options(kind, 0), store, 0, Parameters));
        ServerUpdateRule average = ServerUpdateRule.Open(Options(ServerOptimizerKind.Average, 0), store, 0, Parameters);

        Assert.Equal(125_000_000, ServerUpdateRule.MaxParametersWithMoments);
        Assert.Equal(
            $"SecureFed:ServerOptimizer {ServerUpdateRule.KindName(kind)} keeps its moments (8 bytes per parameter each) with every model version in the round store, one SQLite value per moment of at most 1,000,000,000 bytes, so for at most 125,000,000 parameters; this model has 125,000,001. Use ServerOptimizer average (FedAvg) for it, or a smaller model.",
            refused.Message);
        Assert.Equal("average", average.Name);
    }

    [Theory]
    [MemberData(nameof(Rules))]
    public void SumFusion_OptimizerRunsInOrderOverRounds_EqualsAverageUpdateThenStep_BitForBit(ServerOptimizerKind kind, double noiseVariance, int run)
    {
        // Arrange: d = 1500 (not a multiple of the 512-coordinate decode block), evaluation slots in the tail.
        UpdateCodec codec = Codec(1500);
        ServerOptimizerOptions options = Options(kind, noiseVariance);
        var product = new ServerOptimizer(options);
        var experiment = new ServerOptimizer(options);
        float[] model = InitialModel(codec.ParameterCount);
        float[] expected = model;
        float[] fused = model;

        for (int round = 1; round <= Rounds; round++)
        {
            uint[] sum = Sum(codec, seed: round, weight: (round * 700) + 300);

            // The experiment (InProcessSecureAggregation): the whole averaged update, one step.
            expected = experiment.Step(expected, FederatedAveraging.AverageUpdate(codec, sum, out long weight));

            // The product: W from the tail, then runs of the sum in order.
            var fusion = new SumFusion(fused, codec, codec.DecodeTotalWeightFromTail(sum.AsSpan(codec.ParameterCount)), options.LearningRate, digest: false, product);
            for (int offset = 0; offset < sum.Length; offset += run)
            {
                fusion.Add(offset, sum.AsSpan(offset, Math.Min(run, sum.Length - offset)));
            }

            fused = fusion.Complete().Next;
            Assert.Equal(Bits(expected), Bits(fused));
            Assert.Equal(weight, codec.DecodeTotalWeight(sum));
        }

        Assert.Equal(experiment.Steps, product.Steps);
        Assert.Equal(experiment.FirstMoment.ToArray(), product.FirstMoment.ToArray());
        Assert.Equal(experiment.SecondMoment.ToArray(), product.SecondMoment.ToArray());
        Assert.NotEqual(Bits(model), Bits(fused));
    }

    [Fact]
    public void BeginFusion_Average_IsApplyAggregateBitForBit_AndStoresNoMoments()
    {
        UpdateCodec codec = Codec(1500);
        using AggregatorStore store = NewStore(codec.ParameterCount, out float[] model);
        ServerUpdateRule rule = ServerUpdateRule.Open(new ServerOptimizerOptions { LearningRate = 0.7 }, store, 0, codec.ParameterCount);
        uint[] sum = Sum(codec, seed: 5, weight: 1800);

        SumFusion fusion = rule.BeginFusion(model, 0, codec, 1800, digest: false);
        fusion.Add(0, sum.AsSpan(0, 600));
        fusion.Add(600, sum.AsSpan(600));
        float[] next = fusion.Complete().Next;

        Assert.Equal(Bits(FederatedAveraging.ApplyAggregate(model, codec, sum, 0.7, out _)), Bits(next));
        Assert.Null(rule.Moments);
        Assert.Equal("average", rule.Name);
        Assert.Equal(0, rule.Steps);
    }

    [Theory]
    [InlineData(ServerOptimizerKind.Adam, 2)]
    [InlineData(ServerOptimizerKind.Adam, 3)]
    [InlineData(ServerOptimizerKind.Momentum, 2)]
    public void Rounds_WithARestartInTheMiddle_SameModelsAsWithout_BitForBit(ServerOptimizerKind kind, int restartAfter)
    {
        // Arrange: the uninterrupted reference, as the experiment computes it.
        UpdateCodec codec = Codec(1500);
        ServerOptimizerOptions options = Options(kind, 0);
        var reference = new ServerOptimizer(options);
        var expected = new List<float[]> { InitialModel(codec.ParameterCount) };
        for (int round = 1; round <= Rounds; round++)
        {
            expected.Add(reference.Step(expected[^1], FederatedAveraging.AverageUpdate(codec, Sum(codec, round, 2000), out _)));
        }

        // Act: the aggregator's store and rule, closed and reopened after round restartAfter.
        string path = _dir.Combine("restart", "aggregator.db");
        float[] model;
        using (AggregatorStore store = NewStore(codec.ParameterCount, out model, path))
        {
            ServerUpdateRule rule = ServerUpdateRule.Open(options, store, 0, codec.ParameterCount);
            for (int round = 1; round <= restartAfter; round++)
            {
                model = RunRound(store, rule, codec, round, model);
            }
        }

        using (AggregatorStore store = AggregatorStore.Open(path))
        {
            ModelRecord latest = store.LatestModel()!;
            float[] restored = ModelState.FromBytes(store.LoadModel(latest.Version)!, "latest");
            ServerUpdateRule rule = ServerUpdateRule.Open(options, store, latest.Version, codec.ParameterCount);
            Assert.Equal(restartAfter, rule.Steps);
            Assert.Contains("restored", rule.History, StringComparison.Ordinal);
            for (int round = restartAfter + 1; round <= Rounds; round++)
            {
                restored = RunRound(store, rule, codec, round, restored);
            }

            // Assert: every stored version is the reference's, and so are the saved moments.
            for (int version = 0; version <= Rounds; version++)
            {
                Assert.Equal(Bits(expected[version]), Bits(ModelState.FromBytes(store.LoadModel(version)!, $"v{version}")));
            }

            SavedServerOptimizer saved = store.LoadServerOptimizer()!;
            Assert.Equal(Rounds, saved.ModelVersion);
            Assert.Equal(Rounds, saved.Steps);
            Assert.Equal(reference.FirstMoment.ToArray(), saved.First);
            Assert.Equal(kind == ServerOptimizerKind.Adam ? reference.SecondMoment.ToArray() : null, saved.Second);
        }
    }

    [Fact]
    public void BeginFusion_AfterAStepThatWasNeverStored_ReloadsTheStoredMoments()
    {
        // A round whose fusion ran but whose model version was not stored (the round failed after the fusion) must not
        // leave its half of a step in the moments: the retried round equals the reference.
        UpdateCodec codec = Codec(800);
        ServerOptimizerOptions options = Options(ServerOptimizerKind.Adam, 0);
        var reference = new ServerOptimizer(options);
        float[] v0 = InitialModel(codec.ParameterCount);
        float[] v1 = reference.Step(v0, FederatedAveraging.AverageUpdate(codec, Sum(codec, 1, 2000), out _));
        float[] v2 = reference.Step(v1, FederatedAveraging.AverageUpdate(codec, Sum(codec, 3, 2000), out _));
        using AggregatorStore store = NewStore(codec.ParameterCount, out float[] model);
        ServerUpdateRule rule = ServerUpdateRule.Open(options, store, 0, codec.ParameterCount);
        model = RunRound(store, rule, codec, 1, model);

        // Round 2 fuses a sum, then fails before its model is stored; round 3 completes.
        SumFusion lost = rule.BeginFusion(model, 1, codec, 2000, digest: false);
        lost.Add(0, Sum(codec, 2, 2000));
        lost.Complete();
        float[] next = RunRound(store, rule, codec, 3, model);

        Assert.Equal(Bits(v1), Bits(model));
        Assert.Equal(Bits(v2), Bits(next));
        Assert.Equal(2, rule.Steps);
    }

    [Fact]
    public void Open_MomentsOfAnotherParameterCount_RefusedNamingBoth()
    {
        UpdateCodec codec = Codec(300);
        using AggregatorStore store = NewStore(codec.ParameterCount, out float[] model);
        ServerUpdateRule rule = ServerUpdateRule.Open(Options(ServerOptimizerKind.Adam, 0), store, 0, codec.ParameterCount);
        RunRound(store, rule, codec, 1, model);

        var error = Assert.Throws<InvalidDataException>(() => ServerUpdateRule.Open(Options(ServerOptimizerKind.Adam, 0), store, 1, codec.ParameterCount + 1));

        Assert.Contains("300 values per moment", error.Message, StringComparison.Ordinal);
        Assert.Contains("301 parameters", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_MomentsOfAnotherModelVersion_Refused()
    {
        UpdateCodec codec = Codec(300);
        using AggregatorStore store = NewStore(codec.ParameterCount, out float[] model);
        ServerUpdateRule rule = ServerUpdateRule.Open(Options(ServerOptimizerKind.Adam, 0), store, 0, codec.ParameterCount);
        RunRound(store, rule, codec, 1, model);

        var error = Assert.Throws<InvalidDataException>(() => ServerUpdateRule.Open(Options(ServerOptimizerKind.Adam, 0), store, 0, codec.ParameterCount));

        Assert.Contains("model version 1", error.Message, StringComparison.Ordinal);
        Assert.Contains("current model is version 0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_SwitchedToAverage_IgnoresTheMomentsAndTheNextVersionDeletesThem()
    {
        UpdateCodec codec = Codec(300);
        using AggregatorStore store = NewStore(codec.ParameterCount, out float[] model);
        ServerUpdateRule adam = ServerUpdateRule.Open(Options(ServerOptimizerKind.Adam, 0), store, 0, codec.ParameterCount);
        model = RunRound(store, adam, codec, 1, model);

        ServerUpdateRule average = ServerUpdateRule.Open(new ServerOptimizerOptions(), store, 1, codec.ParameterCount);
        Assert.Contains("not used by average", average.History, StringComparison.Ordinal);
        RunRound(store, average, codec, 2, model);

        Assert.Null(store.LoadServerOptimizer());
    }

    [Fact]
    public void CompleteRoundWithModel_MomentsOfAnotherLength_RefusedAndNothingStored()
    {
        UpdateCodec codec = Codec(300);
        using AggregatorStore store = NewStore(codec.ParameterCount, out float[] model);
        long round = store.BeginRound("{}");
        byte[] bytes = ModelState.ToBytes(model);

        Assert.Throws<ArgumentException>(() => store.CompleteRoundWithModel(round, 1, bytes, ModelState.Digest(model), Sites, new ServerOptimizerMoments("adam", 1, new double[299], new double[299])));

        Assert.Equal(0, store.LatestModel()!.Version);
        Assert.Null(store.LoadServerOptimizer());
    }

    [Fact]
    public void Options_ServerRuleSettings_ValidatedAndNamed()
    {
        var options = new AggregatorOptions { Federation = "f", ModelSpecSha256 = new string('a', 64), ServerOptimizer = "sgd", ServerTau = 0, ServerBeta2 = 1 };

        IReadOnlyList<string> problems = options.Validate();

        Assert.Contains(problems, p => p.StartsWith("SecureFed:ServerOptimizer must be average (FedAvg), momentum (FedAvgM) or adam (FedAdam), got 'sgd'", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("SecureFed:ServerTau: ", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("SecureFed:ServerBeta2: ", StringComparison.Ordinal));
        Assert.Empty(new AggregatorOptions { Federation = "f", ModelSpecSha256 = new string('a', 64), ServerOptimizer = "adam", ServerLearningRate = 0.02, ServerTau = 1e-7 }.Validate());
        Assert.Equal(ServerOptimizerKind.Average, new AggregatorOptions().ServerOptimizerKind);
    }

    private static float[] RunRound(AggregatorStore store, ServerUpdateRule rule, UpdateCodec codec, int seed, float[] model)
    {
        // As RoundCoordinator.CompleteAsync: begin the fusion on the current version, read the sum in order, store the
        // version with the rule's moments in one transaction, then tell the rule.
        long round = store.BeginRound("{}");
        long version = store.LatestModel()!.Version;
        uint[] sum = Sum(codec, seed, 2000);
        SumFusion fusion = rule.BeginFusion(model, version, codec, codec.DecodeTotalWeight(sum), digest: false);
        fusion.Add(0, sum.AsSpan(0, 100));
        fusion.Add(100, sum.AsSpan(100));
        float[] next = fusion.Complete().Next;
        store.CompleteRoundWithModel(round, version + 1, ModelState.ToBytes(next), ModelState.Digest(next), Sites, rule.Moments);
        rule.Stored();
        return next;
    }

    private AggregatorStore NewStore(int parameters, out float[] model, string? path = null)
    {
        AggregatorStore store = AggregatorStore.Open(path ?? _dir.Combine(Guid.NewGuid().ToString("N"), "aggregator.db"));
        model = InitialModel(parameters);
        store.SaveModel(0, 0, ModelState.ToBytes(model), ModelState.Digest(model));
        return store;
    }

    private static ServerOptimizerOptions Options(ServerOptimizerKind kind, double noiseVariance) => new()
    {
        Kind = kind,
        LearningRate = 0.02,
        Tau = 1e-7,
        NoiseVariance = noiseVariance,
    };

    private static UpdateCodec Codec(int parameters) =>
        UpdateCodec.Plan(parameters, clipBound: 1.0, cohortSize: Sites.Length, noiseHeadroom: 0.5, WeightCap, evaluation: EvaluationLayout.Create(["Disease"], 1000));

    private static float[] InitialModel(int parameters)
    {
        var random = new Random(11);
        return [.. Enumerable.Range(0, parameters).Select(_ => (float)((random.NextDouble() * 2) - 1))];
    }

    /// <summary>A plausible unmasked sum: small signed coordinates mod 2^b, weight W, some evaluation counts.</summary>
    private static uint[] Sum(UpdateCodec codec, int seed, long weight)
    {
        var random = new Random(seed);
        uint mask = codec.BitWidth == 32 ? uint.MaxValue : (1u << codec.BitWidth) - 1;
        uint[] sum = new uint[codec.VectorLength];
        for (int i = 0; i < codec.ParameterCount; i++)
        {
            double value = (random.NextDouble() - 0.5) * 0.05;
            sum[i] = (uint)(long)Math.Round(value * codec.Scale) & mask;
        }

        sum[codec.ParameterCount] = (uint)weight;
        for (int i = codec.ParameterCount + 1; i < sum.Length; i++)
        {
            sum[i] = (uint)random.Next(0, 50);
        }

        return sum;
    }

    private static int[] Bits(float[] values) => MemoryMarshal.Cast<float, int>(values).ToArray();
}
