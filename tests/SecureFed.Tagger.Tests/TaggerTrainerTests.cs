namespace SecureFed.Tagger.Tests;

public sealed class TaggerTrainerTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);

    /// <summary>Tiny config without dropout, so DP runs are deterministic and comparable.</summary>
    private static readonly TaggerConfig NoDropout = TaggerConfig.Tiny with { Dropout = 0, WordDropout = 0 };

    [Fact]
    public void Train_TinySyntheticSlice_ImprovesDevF1OverUntrained()
    {
        SiteProfile profile = SyntheticClinicalCorpus.Profiles[0];
        var train = SyntheticClinicalCorpus.Generate(profile, 300, seed: 1);
        var dev = SyntheticClinicalCorpus.Generate(profile, 80, seed: 2);
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, seed: 1, device: "cpu");
        double before = TaggerEvaluator.Evaluate(model, dev).F1;
        var reports = new List<TrainProgress>();

        TrainResult result = new TaggerTrainer().Train(model, train, dev,
            new TrainOptions { Epochs = 4, BatchSize = 16, LearningRate = 0.01, Seed = 1 }, new SyncProgress(reports.Add));
        double after = TaggerEvaluator.Evaluate(model, dev).F1;

        Assert.True(after > before + 0.3, $"dev F1 {before:F3} -> {after:F3}");
        Assert.Equal(result.BestDevF1!.Value, after, 9);
        Assert.True(result.TokensPerSecond > 0);
        Assert.Equal(0, result.DpSteps);
        Assert.Contains(reports, r => r.EpochCompleted && r.DevF1 is not null);
    }

    /// <summary>
    /// A weight that is not a number makes every loss NaN: each step is skipped (a step along a NaN gradient would make
    /// every weight NaN), and an epoch of nothing but skipped steps is an error naming the epoch and the learning rate,
    /// where the trainer used to go on and report the last finite epoch's loss for every later epoch.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Train_NaNWeight_EveryStepSkipped_DivergedErrorNamesTheEpoch(bool crf)
    {
        var train = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 40, seed: 1);
        using var model = TaggerModel.Create(NoDropout with { Crf = crf }, Labels, 1, "cpu");
        float[] weights = model.Flatten();
        weights[^1] = float.NaN;
        model.Unflatten(weights);

        var ex = Assert.Throws<InvalidOperationException>(() => new TaggerTrainer().Train(model, train, null,
            new TrainOptions { Epochs = 3, BatchSize = 8, LearningRate = 0.01, Seed = 1 }));

        Assert.Contains("Training diverged in epoch 1", ex.Message, StringComparison.Ordinal);
        Assert.Contains("at every one of its 5 steps", ex.Message, StringComparison.Ordinal);
        Assert.Contains("learning rate 0.01", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// With a dev set, weights that stop being numbers after an epoch was kept end the training instead: the model gets
    /// the best earlier epoch's weights back and the result says it diverged (here the weights are made NaN from the
    /// progress callback after epoch 1, which runs on the training thread).
    /// </summary>
    [Fact]
    public void Train_WeightsTurnNaNAfterAKeptEpoch_StopsWithTheBestEpochsWeights()
    {
        var train = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 40, seed: 1);
        var dev = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 20, seed: 2);
        using var model = TaggerModel.Create(NoDropout, Labels, 1, "cpu");
        float[]? afterEpoch1 = null;

        TrainResult result = new TaggerTrainer().Train(model, train, dev,
            new TrainOptions { Epochs = 4, BatchSize = 8, LearningRate = 0.01, Seed = 1, Patience = 0 },
            new SyncProgress(p =>
            {
                if (p.EpochCompleted && p.Epoch == 1)
                {
                    afterEpoch1 = model.Flatten();
                    float[] broken = [.. afterEpoch1];
                    broken[^1] = float.NaN;
                    model.Unflatten(broken);
                }
            }));

        Assert.True(result.Diverged);
        Assert.Equal(2, result.Epochs);
        Assert.Equal(1, result.BestEpoch);
        Assert.Equal(5, result.SkippedSteps);
        Assert.Equal(afterEpoch1, model.Flatten());
    }

    [Fact]
    public void Train_MaxSteps_CapsOptimizerSteps()
    {
        var train = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[2], 100, seed: 1);
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 1, "cpu");

        TrainResult result = new TaggerTrainer().Train(model, train, null, new TrainOptions { Epochs = 5, BatchSize = 8, MaxSteps = 3 });

        Assert.Equal(3, result.Steps);
        Assert.Null(result.BestDevF1);
    }

    [Fact]
    public void Train_Cancelled_ThrowsOperationCanceled()
    {
        var train = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[2], 20, seed: 1);
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 1, "cpu");
        using var cts = new CancellationTokenSource();
        cts.Cancel();

        Assert.Throws<OperationCanceledException>(() => new TaggerTrainer().Train(model, train, null, new TrainOptions(), null, cts.Token));
    }

    [Fact]
    public void DpSgd_HugeGradientExample_ChangesUpdateByAtMostClipNormTimesLrOverBatch()
    {
        // Plain SGD, q = 1 (every example in the single step), no noise: the update is exactly
        // -lr * sum_i clip(g_i) / (q N). One example with a gradient far above C may then move the update by at most C * lr / B.
        const double c = 0.5;
        const double lr = 0.1;
        var normal = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 8, seed: 3).ToList();
        var huge = new Sentence(
            [.. Enumerable.Range(0, 300).Select(i => "token" + (i % 17))],
            [.. Enumerable.Range(0, 300).Select(i => i % 2 == 0 ? "B-Genetics" : "B-Drug")]);
        var options = new TrainOptions
        {
            Epochs = 1,
            MaxSteps = 1,
            LearningRate = lr,
            Optimizer = TaggerOptimizer.Sgd,
            Seed = 1,
            DpSgd = new DpSgdOptions(NoiseMultiplier: 0, MaxGradNorm: c, SampleRate: 1.0),
        };

        double[] withoutHuge = Update(normal, options);
        double[] withHuge = Update([.. normal, huge], options);
        double[] noClipWithHuge = Update([.. normal, huge], options with { DpSgd = new DpSgdOptions(0, 1e9, 1.0) });

        int n = normal.Count;
        int b = n + 1;
        // lr * clip(g_huge) / b = withHuge - (n / b) * withoutHuge   (withoutHuge = lr * sum_normal / n)
        double contribution = Norm(withHuge.Select((v, i) => v - (n / (double)b * withoutHuge[i])));
        double unclipped = Norm(noClipWithHuge.Select((v, i) => v - (n / (double)b * withoutHuge[i])));
        double bound = c * lr / b;

        Assert.True(contribution <= bound * 1.001, $"huge example moved the update by {contribution:G6} > bound {bound:G6}");
        Assert.True(contribution >= bound * 0.99, $"huge example should be clipped to exactly C (got {contribution:G6}, C*lr/B = {bound:G6})");
        Assert.True(unclipped > 10 * bound, $"test premise: without clipping the huge example dominates ({unclipped:G6})");
    }

    [Fact]
    public void DpSgd_Noise_ReportsStepsAndSampleRateAndPerturbsUpdate()
    {
        var data = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[1], 20, seed: 5).ToList();
        var dp = new DpSgdOptions(NoiseMultiplier: 1.0, MaxGradNorm: 1.0, SampleRate: 0.25) { ReproducibleRandomness = true };
        var options = new TrainOptions { Epochs = 2, LearningRate = 0.05, Optimizer = TaggerOptimizer.Sgd, DpSgd = dp };

        using var model = TaggerModel.Create(NoDropout, Labels, 1, "cpu");
        TrainResult result = new TaggerTrainer().Train(model, data, null, options);
        double[] noisy = Update(data, options);
        double[] clean = Update(data, options with { DpSgd = dp with { NoiseMultiplier = 0 } });

        Assert.Equal(8, result.DpSteps); // 2 epochs x round(1 / 0.25) steps
        Assert.Equal(0.25, result.SampleRate);
        Assert.True(Norm(noisy.Select((v, i) => v - clean[i])) > 0.01, "noise must change the update");
    }

    private static double[] Update(IReadOnlyList<Sentence> data, TrainOptions options)
    {
        using var model = TaggerModel.Create(NoDropout, Labels, 1, "cpu");
        float[] before = model.Flatten();
        new TaggerTrainer().Train(model, data, null, options);
        float[] after = model.Flatten();
        return [.. after.Select((v, i) => (double)v - before[i])];
    }

    private static double Norm(IEnumerable<double> values) => Math.Sqrt(values.Sum(v => v * v));
}
