namespace SecureFed.Tagger.Tests;

/// <summary>
/// <see cref="DpSgdOptions.PreconditionSplit"/>: the factors A act as A^α on each example's gradient before clipping and
/// as A^(1−α) on the noisy gradient, so the signal's step is A ⊙ g for every α while the noise's step is A^(1−α) ⊙ n.
/// </summary>
public sealed class PreconditionSplitTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);
    private static readonly TaggerConfig Config = TaggerConfig.Tiny with { Dropout = 0, WordDropout = 0 };

    [Fact]
    public void Train_NoNoiseNothingClipped_EverySplitTakesTheSameStep()
    {
        // q = 1, no noise, a clip no gradient reaches: each step is lr · A ⊙ (mean gradient) whatever α is.
        float[] factors = Factors(seed: 3);
        var dp = new DpSgdOptions(NoiseMultiplier: 0, MaxGradNorm: 1e6, SampleRate: 1.0) { Preconditioner = factors, ReproducibleRandomness = true };

        float[] before = TrainOnce(dp);
        float[] half = TrainOnce(dp with { PreconditionSplit = 0.5 });
        float[] after = TrainOnce(dp with { PreconditionSplit = 0 });
        float[] afterFlag = TrainOnce(dp with { PreconditionAfterNoise = true });
        float[] plain = TrainOnce(dp with { Preconditioner = null });

        float[] initial = Initial();
        double moved = initial.Zip(before, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(moved > 1e-3, $"test premise: the step moves the model (max change {moved})");
        AssertClose(before, half);
        AssertClose(before, after);
        Assert.Equal(after, afterFlag);
        Assert.False(plain.AsSpan().SequenceEqual(before), "test premise: the factors change the step");
    }

    [Fact]
    public void Train_NoiseDominates_TensorsStepNoiseScaledByFactorToTheOneMinusAlpha()
    {
        // One factor per tensor; one tensor (the output layer's weights) gets 0.01. With σ = 1000 the step is all noise: at α = 1
        // every tensor's noise has the same size, at α = 0 the small tensor's is 100 times smaller, at α = 0.5 ten times.
        using var probe = TaggerModel.Create(Config, Labels, seed: 1, device: "cpu");
        string small = probe.ParameterLayout.Single(p => p.Name == "head.weight").Name;
        float[] factors = PerTensor(probe, name => name == small ? 0.01f : 1f);
        var dp = new DpSgdOptions(NoiseMultiplier: 1000, MaxGradNorm: 1, SampleRate: 1.0) { Preconditioner = factors, ReproducibleRandomness = true };

        double ratioBefore = SmallOverRest(probe, small, TrainOnce(dp));
        double ratioHalf = SmallOverRest(probe, small, TrainOnce(dp with { PreconditionSplit = 0.5 }));
        double ratioAfter = SmallOverRest(probe, small, TrainOnce(dp with { PreconditionSplit = 0 }));

        Assert.InRange(ratioBefore, 0.8, 1.25);
        Assert.InRange(ratioHalf, 0.08, 0.125);
        Assert.InRange(ratioAfter, 0.008, 0.0125);
    }

    [Theory]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void Validate_SplitOutsideZeroOne_NamesIt(double split)
    {
        var dp = new DpSgdOptions(1, 1, 0.1) { PreconditionSplit = split };

        var e = Assert.Throws<ArgumentOutOfRangeException>(dp.Validate);
        Assert.Equal(nameof(DpSgdOptions.PreconditionSplit), e.ParamName);
    }

    private static float[] TrainOnce(DpSgdOptions dp)
    {
        var data = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 16, seed: 3).ToList();
        var options = new TrainOptions { Epochs = 1, LearningRate = 0.5, Optimizer = TaggerOptimizer.Sgd, Patience = 0, Seed = 5, Threads = 1, DpSgd = dp };
        using var model = TaggerModel.Create(Config, Labels, seed: 1, device: "cpu");
        new TaggerTrainer().Train(model, data, null, options);
        return model.Flatten();
    }

    private static float[] Initial()
    {
        using var model = TaggerModel.Create(Config, Labels, seed: 1, device: "cpu");
        return model.Flatten();
    }

    private static float[] Factors(int seed)
    {
        using var model = TaggerModel.Create(Config, Labels, seed: 1, device: "cpu");
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, checked((int)model.ParameterCount)).Select(_ => (float)Math.Exp((rng.NextDouble() * 4) - 2))];
    }

    private static float[] PerTensor(TaggerModel model, Func<string, float> factor) =>
        [.. model.ParameterLayout.SelectMany(p => Enumerable.Repeat(factor(p.Name), checked((int)p.Shape.Aggregate(1L, (a, b) => a * b))))];

    /// <summary>RMS change of tensor <paramref name="small"/> over the RMS change of the LSTM and the other dense tensors.</summary>
    private static double SmallOverRest(TaggerModel layout, string small, float[] trained)
    {
        float[] initial = Initial();
        double smallSum = 0, restSum = 0;
        long smallCount = 0, restCount = 0;
        int offset = 0;
        foreach (ParameterInfo p in layout.ParameterLayout)
        {
            int n = checked((int)p.Shape.Aggregate(1L, (a, b) => a * b));
            double sq = 0;
            for (int j = offset; j < offset + n; j++)
            {
                sq += Math.Pow(trained[j] - initial[j], 2);
            }

            if (p.Name == small)
            {
                (smallSum, smallCount) = (smallSum + sq, smallCount + n);
            }
            else if (!p.Name.EndsWith("_emb.weight", StringComparison.Ordinal))
            {
                (restSum, restCount) = (restSum + sq, restCount + n);
            }

            offset += n;
        }

        return Math.Sqrt(smallSum / smallCount) / Math.Sqrt(restSum / restCount);
    }

    private static void AssertClose(float[] want, float[] got)
    {
        for (int i = 0; i < want.Length; i++)
        {
            Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5 * Math.Max(1, Math.Abs(want[i])), $"coordinate {i}: {want[i]} against {got[i]}");
        }
    }
}
