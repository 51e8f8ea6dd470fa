using SecureFed.Protocol;
using SecureFed.Testing;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// The aggregator's update rule on the averaged update (Reddi et al., ICLR 2021): FedAvg, FedAvgM and FedAdam checked
/// against the formulas computed by hand, plus state export/restore and validation.
/// </summary>
public sealed class ServerOptimizerTests
{
    private static readonly float[] Model = [1f, -2f, 0.5f];
    private static readonly double[] Update1 = [0.1, -0.3, 0.0];
    private static readonly double[] Update2 = [0.2, 0.1, -0.4];

    [Fact]
    public void Step_Average_MovesByLearningRateTimesUpdate()
    {
        var optimizer = new ServerOptimizer(new ServerOptimizerOptions { LearningRate = 0.5 });

        float[] next = optimizer.Step(Model, Update1);

        Assert.Equal([1.05f, -2.15f, 0.5f], next);
    }

    [Fact]
    public void Step_Momentum_AccumulatesVelocityAcrossRounds()
    {
        var optimizer = new ServerOptimizer(new ServerOptimizerOptions { Kind = ServerOptimizerKind.Momentum, LearningRate = 2, Beta1 = 0.5 });

        float[] first = optimizer.Step(Model, Update1);
        float[] second = optimizer.Step(first, Update2);

        for (int i = 0; i < Model.Length; i++)
        {
            double v1 = Update1[i];
            double v2 = (0.5 * v1) + Update2[i];
            Assert.Equal((float)(Model[i] + (2 * v1)), first[i]);
            Assert.Equal((float)(first[i] + (2 * v2)), second[i]);
        }
    }

    [Fact]
    public void Step_Adam_MatchesReddiFormulaWithTau()
    {
        var options = new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 0.01, Beta1 = 0.9, Beta2 = 0.99, Tau = 1e-3 };
        var optimizer = new ServerOptimizer(options);

        float[] first = optimizer.Step(Model, Update1);
        float[] second = optimizer.Step(first, Update2);

        for (int i = 0; i < Model.Length; i++)
        {
            double m1 = 0.1 * Update1[i];
            double v1 = 0.01 * Update1[i] * Update1[i];
            double m2 = (0.9 * m1) + (0.1 * Update2[i]);
            double v2 = (0.99 * v1) + (0.01 * Update2[i] * Update2[i]);
            Assert.Equal((float)(Model[i] + (0.01 * m1 / (Math.Sqrt(v1) + 1e-3))), first[i]);
            Assert.Equal((float)(first[i] + (0.01 * m2 / (Math.Sqrt(v2) + 1e-3))), second[i]);
        }

        Assert.Equal(2, optimizer.Steps);
    }

    [Fact]
    public void Step_AdamWithNoiseVariance_MatchesDpAdamBcFormula()
    {
        // Φ = 0.02: coordinate 0 (v̂ well above Φ) is corrected, coordinate 2 (v̂ under Φ) sits on the floor 0.5 Φ.
        const double phi = 0.02, floor = 0.5;
        var options = new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 0.01, Beta1 = 0.9, Beta2 = 0.99, Tau = 1e-6, NoiseVariance = phi, NoiseFloor = floor };
        var optimizer = new ServerOptimizer(options);
        double[] big = [0.5, -0.3, 0.01];
        double[] big2 = [0.4, 0.2, -0.02];

        float[] first = optimizer.Step(Model, big);
        float[] second = optimizer.Step(first, big2);

        for (int i = 0; i < Model.Length; i++)
        {
            double m1 = 0.1 * big[i];
            double v1 = 0.01 * big[i] * big[i];
            double m2 = (0.9 * m1) + (0.1 * big2[i]);
            double v2 = (0.99 * v1) + (0.01 * big2[i] * big2[i]);
            double s1 = Math.Sqrt(Math.Max((v1 / (1 - 0.99)) - phi, floor * phi));
            double s2 = Math.Sqrt(Math.Max((v2 / (1 - (0.99 * 0.99))) - phi, floor * phi));
            Assert.Equal((float)(Model[i] + (0.01 * (m1 / (1 - 0.9)) / (s1 + 1e-6))), first[i]);
            Assert.Equal((float)(first[i] + (0.01 * (m2 / (1 - (0.9 * 0.9))) / (s2 + 1e-6))), second[i]);
        }

    }

    [Fact]
    public void Step_AdamWithNoiseVariance_PureNoiseStepsStayNearLearningRateTimesMomentumOverFloor()
    {
        // Updates that are pure noise of variance Φ: uncorrected Adam divides by √v̂ ≈ √Φ anyway, but the corrected
        // second moment sits on its floor, so the step is m̂ / √(floor Φ): about 0.23 √Φ / √(floor Φ) in magnitude
        // for β₁ = 0.9, never the blow-up a floor of zero would give.
        const double phi = 1e-4;
        var optimizer = new ServerOptimizer(new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 1, Beta1 = 0.9, Beta2 = 0.99, Tau = 1e-12, NoiseVariance = phi, NoiseFloor = 1 });
        var random = new Random(7);
        const int n = 4000;
        float[] model = new float[n];
        double sumSquares = 0;
        for (int step = 0; step < 200; step++)
        {
            double[] noise = [.. Enumerable.Range(0, n).Select(_ => Math.Sqrt(phi) * Normal(random))];
            float[] next = optimizer.Step(model, noise);
            if (step == 199)
            {
                sumSquares = Enumerable.Range(0, n).Sum(i => (double)(next[i] - model[i]) * (next[i] - model[i]));
            }

            model = next;
        }

        double rms = Math.Sqrt(sumSquares / n);
        Assert.InRange(rms, 0.15, 0.35); // √((1 − β₁) / (1 + β₁)) = 0.229
    }

    [Fact]
    public void SetNoiseVariance_ChangedBetweenSteps_SubtractsTheBeta2AverageOfThePastSteps()
    {
        // Step 1 with Φ₁ = 0.02, step 2 with Φ₂ = 0.005: v̂₂ carries 0.01 Φ₁ 0.99 + 0.01 Φ₂ over 1 − 0.99², not Φ₂.
        const double phi1 = 0.02, phi2 = 0.005;
        var optimizer = new ServerOptimizer(new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 0.01, Beta1 = 0.9, Beta2 = 0.99, Tau = 1e-6, NoiseVariance = phi1, NoiseFloor = 0.5 });
        double[] big = [0.5, -0.3, 0.01];
        double[] big2 = [0.4, 0.2, -0.02];

        float[] first = optimizer.Step(Model, big);
        optimizer.SetNoiseVariance(phi2);
        float[] second = optimizer.Step(first, big2);

        double phiSeen = ((0.99 * 0.01 * phi1) + (0.01 * phi2)) / (1 - (0.99 * 0.99));
        Assert.NotEqual(phi2, phiSeen, 3);
        for (int i = 0; i < Model.Length; i++)
        {
            double m2 = (0.9 * 0.1 * big[i]) + (0.1 * big2[i]);
            double v2 = (0.99 * 0.01 * big[i] * big[i]) + (0.01 * big2[i] * big2[i]);
            double s2 = Math.Sqrt(Math.Max((v2 / (1 - (0.99 * 0.99))) - phiSeen, 0.5 * phiSeen));
            Assert.Equal((float)(first[i] + (0.01 * (m2 / (1 - (0.9 * 0.9))) / (s2 + 1e-6))), second[i]);
        }

        Assert.Equal(phi2, optimizer.NoiseVariance);
    }

    [Fact]
    public void SetNoiseVariance_SameValue_StepsAsWithTheOptionsAlone()
    {
        var options = new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 0.01, Beta2 = 0.99, NoiseVariance = 0.02 };
        var plain = new ServerOptimizer(options);
        var set = new ServerOptimizer(options);
        double[] update = [0.5, -0.3, 0.01];

        set.SetNoiseVariance(0.02);

        Assert.Equal(plain.Step(Model, update), set.Step(Model, update));
    }

    [Fact]
    public void SetNoiseVariance_WithoutNoiseCorrection_Throws()
    {
        var optimizer = new ServerOptimizer(new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam });

        Assert.Throws<InvalidOperationException>(() => optimizer.SetNoiseVariance(0.01));
    }

    [Theory]
    [InlineData(ServerOptimizerKind.Momentum, 0.01, 1.0, "adam server optimizer only")]
    [InlineData(ServerOptimizerKind.Adam, -0.01, 1.0, "noise variance")]
    [InlineData(ServerOptimizerKind.Adam, 0.01, 0.0, "noise floor")]
    public void Constructor_NoiseCorrectionOutOfPlace_NamesIt(ServerOptimizerKind kind, double phi, double floor, string named)
    {
        var options = new ServerOptimizerOptions { Kind = kind, NoiseVariance = phi, NoiseFloor = floor };

        var error = Assert.Throws<ArgumentException>(() => new ServerOptimizer(options));

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    [Fact]
    public void RestoreState_AfterExport_ContinuesExactlyAsTheUninterruptedOptimizer()
    {
        var options = new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 0.05 };
        var uninterrupted = new ServerOptimizer(options);
        float[] a1 = uninterrupted.Step(Model, Update1);
        ServerOptimizerState saved = uninterrupted.ExportState();
        float[] a2 = uninterrupted.Step(a1, Update2);

        var restarted = new ServerOptimizer(options);
        restarted.RestoreState(saved);
        float[] b2 = restarted.Step(a1, Update2);

        Assert.Equal(a2, b2);
        Assert.Equal(2, restarted.Steps);
    }

    [Fact]
    public void ExportState_IsACopy_LaterStepsDoNotChangeIt()
    {
        var optimizer = new ServerOptimizer(new ServerOptimizerOptions { Kind = ServerOptimizerKind.Momentum });
        optimizer.Step(Model, Update1);
        ServerOptimizerState saved = optimizer.ExportState();
        double before = saved.First![0];

        optimizer.Step(Model, Update2);

        Assert.Equal(before, saved.First[0]);
    }

    [Fact]
    public void Step_ModelAndUpdateLengthsDiffer_Throws()
    {
        var optimizer = new ServerOptimizer(new ServerOptimizerOptions());

        var error = Assert.Throws<ArgumentException>(() => optimizer.Step(Model, [0.1, 0.2]));

        Assert.Contains("3 parameters", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Step_NonFiniteResult_AbortsTheRoundNamingTheParameter()
    {
        var optimizer = new ServerOptimizer(new ServerOptimizerOptions());

        var error = Assert.Throws<RoundAbortedException>(() => optimizer.Step(Model, [0, double.PositiveInfinity, 0]));

        Assert.Contains("parameter 1", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.0, 0.9, 0.99, 1e-3, "learning rate")]
    [InlineData(1.0, 1.0, 0.99, 1e-3, "β1")]
    [InlineData(1.0, 0.9, -0.1, 1e-3, "β2")]
    [InlineData(1.0, 0.9, 0.99, 0.0, "τ")]
    public void Constructor_OptionOutOfRange_NamesIt(double lr, double beta1, double beta2, double tau, string named)
    {
        var options = new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = lr, Beta1 = beta1, Beta2 = beta2, Tau = tau };

        var error = Assert.Throws<ArgumentException>(() => new ServerOptimizer(options));

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("avg", ServerOptimizerKind.Average)]
    [InlineData("FedAvgM", ServerOptimizerKind.Momentum)]
    [InlineData("adam", ServerOptimizerKind.Adam)]
    public void ParseKind_KnownNames_Parse(string name, ServerOptimizerKind expected) =>
        Assert.Equal(expected, ServerOptimizerOptions.ParseKind(name));

    [Fact]
    public void ParseKind_UnknownName_ListsTheChoices()
    {
        var error = Assert.Throws<ArgumentException>(() => ServerOptimizerOptions.ParseKind("sgd"));

        Assert.Contains("avg, momentum or adam", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AverageUpdate_TwoWeightedSites_IsTheWeightedMeanOfTheirDeltas()
    {
        UpdateCodec codec = UpdateCodec.Plan(2, 10, 2, 0, 100);
        var a = new uint[codec.VectorLength];
        var b = new uint[codec.VectorLength];
        using var random = new DeterministicRandomSource(7);
        FederatedAveraging.PrivatizeUpdate([1f, 0f], 100, codec, 10, 0, random, a);
        FederatedAveraging.PrivatizeUpdate([0f, 2f], 50, codec, 10, 0, random, b);
        var sum = new uint[codec.VectorLength];
        for (int i = 0; i < sum.Length; i++)
        {
            sum[i] = a[i] + b[i];
        }

        double[] mean = FederatedAveraging.AverageUpdate(codec, sum, out long weight);

        Assert.Equal(150, weight);
        Assert.Equal(100.0 / 150, mean[0], 3);
        Assert.Equal(2 * 50.0 / 150, mean[1], 3);
    }

    [Theory]
    [InlineData(ServerOptimizerKind.Average, 0.0, 7)]
    [InlineData(ServerOptimizerKind.Momentum, 0.0, 1)]
    [InlineData(ServerOptimizerKind.Adam, 0.0, 13)]
    [InlineData(ServerOptimizerKind.Adam, 1e-4, 64)]
    public void StepRun_InRunsOverRounds_EqualsWholeStepBitForBit(ServerOptimizerKind kind, double noiseVariance, int run)
    {
        var options = new ServerOptimizerOptions { Kind = kind, LearningRate = 0.02, Tau = 1e-7, NoiseVariance = noiseVariance };
        var whole = new ServerOptimizer(options);
        var pieces = new ServerOptimizer(options);
        var random = new Random(3);
        float[] model = [.. Enumerable.Range(0, 200).Select(_ => (float)random.NextDouble())];
        float[] byWhole = model;
        float[] byPieces = model;

        for (int round = 0; round < 4; round++)
        {
            double[] update = [.. Enumerable.Range(0, 200).Select(_ => (random.NextDouble() - 0.5) * 0.1)];
            byWhole = whole.Step(byWhole, update);
            float[] next = new float[model.Length];
            pieces.BeginStep(model.Length);
            for (int offset = 0; offset < model.Length; offset += run)
            {
                int n = Math.Min(run, model.Length - offset);
                pieces.StepRun(offset, byPieces.AsSpan(offset, n), update.AsSpan(offset, n), next.AsSpan(offset, n));
            }

            pieces.EndStep();
            byPieces = next;
            Assert.Equal(byWhole.Select(BitConverter.SingleToInt32Bits), byPieces.Select(BitConverter.SingleToInt32Bits));
        }

        Assert.Equal(whole.Steps, pieces.Steps);
        Assert.Equal(whole.FirstMoment.ToArray(), pieces.FirstMoment.ToArray());
        Assert.Equal(whole.SecondMoment.ToArray(), pieces.SecondMoment.ToArray());
    }

    [Fact]
    public void StepRun_InRunsWithTheNoiseVarianceChangedBetweenRounds_EqualsWholeStepBitForBit()
    {
        // The β₂-average of the past steps' Φ moved on once per run instead of once per step, so a step taken in runs
        // (as the aggregator reads the unmasked sum) subtracted another Φ in each run once Φ had changed (review of session 50).
        var options = new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 0.02, Tau = 1e-7, NoiseVariance = 1e-4 };
        var whole = new ServerOptimizer(options);
        var pieces = new ServerOptimizer(options);
        var random = new Random(5);
        float[] byWhole = [.. Enumerable.Range(0, 200).Select(_ => (float)random.NextDouble())];
        float[] byPieces = byWhole;

        for (int round = 0; round < 4; round++)
        {
            double phi = 1e-4 * (round + 1);
            whole.SetNoiseVariance(phi);
            pieces.SetNoiseVariance(phi);
            double[] update = [.. Enumerable.Range(0, 200).Select(_ => (random.NextDouble() - 0.5) * 0.1)];
            byWhole = whole.Step(byWhole, update);
            float[] next = new float[byPieces.Length];
            pieces.BeginStep(byPieces.Length);
            for (int offset = 0; offset < byPieces.Length; offset += 16)
            {
                int n = Math.Min(16, byPieces.Length - offset);
                pieces.StepRun(offset, byPieces.AsSpan(offset, n), update.AsSpan(offset, n), next.AsSpan(offset, n));
            }

            pieces.EndStep();
            byPieces = next;
            Assert.Equal(byWhole.Select(BitConverter.SingleToInt32Bits), byPieces.Select(BitConverter.SingleToInt32Bits));
        }
    }

    [Fact]
    public void AdoptState_TakesTheArrays_ContinuesAsRestoreState()
    {
        var options = new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 0.01 };
        var first = new ServerOptimizer(options);
        first.Step(Model, Update1);
        ServerOptimizerState saved = first.ExportState();
        var restored = new ServerOptimizer(options);
        var adopted = new ServerOptimizer(options);

        restored.RestoreState(saved);
        adopted.AdoptState(saved);

        Assert.Equal(restored.Step(Model, Update2), adopted.Step(Model, Update2));
        Assert.Same(saved.First, System.Runtime.InteropServices.MemoryMarshal.TryGetArray(adopted.FirstMoment, out ArraySegment<double> segment) ? segment.Array : null);
    }

    [Fact]
    public void Validate_WithSettingPrefix_LeadsEveryProblemWithItsKey()
    {
        var options = new ServerOptimizerOptions { Kind = ServerOptimizerKind.Momentum, LearningRate = 0, Beta1 = 1, Beta2 = 2, Tau = 0, NoiseVariance = 1, NoiseFloor = 0 };

        IReadOnlyList<string> problems = options.Validate("SecureFed:Server");

        Assert.Equal(
            ["SecureFed:ServerLearningRate", "SecureFed:ServerBeta1", "SecureFed:ServerBeta2", "SecureFed:ServerTau", "SecureFed:ServerOptimizer", "SecureFed:ServerNoiseFloor"],
            problems.Select(p => p[..p.IndexOf(':', "SecureFed:".Length)]));
        Assert.Equal(options.Validate().Count, problems.Count);
    }
}
