namespace SecureFed.Tagger.Tests;

/// <summary>
/// Each training call owns its randomness: seeded runs give the same weights alone or while other trainers run in the
/// same process, and DP-SGD's sampling and noise are secret (not recomputable from the seed) unless reproducibility is
/// asked for.
/// </summary>
public sealed class TrainingRandomnessTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);

    [Fact]
    public async Task Train_ReproducibleRunsAtOnceOnFourThreads_EachEqualsItsRunAlone()
    {
        // Dropout and word dropout on (the tiny model's 0.1 and 0.05), DP-SGD noise on for two of the four.
        float[][] alone = [.. Enumerable.Range(0, 4).Select(Train)];

        for (int attempt = 0; attempt < 2; attempt++)
        {
            var together = Enumerable.Range(0, 4).Select(i => Task.Factory.StartNew(() => Train(i), TaskCreationOptions.LongRunning)).ToArray();
            float[][] weights = await Task.WhenAll(together).WaitAsync(TimeSpan.FromMinutes(3));
            for (int i = 0; i < 4; i++)
            {
                Assert.True(alone[i].AsSpan().SequenceEqual(weights[i]), $"trainer {i} (attempt {attempt}) differs from its run alone");
            }
        }

        Assert.False(alone[0].AsSpan().SequenceEqual(alone[2]), "test premise: different seeds give different models");
    }

    [Fact]
    public void Train_DpSgdWithDefaultRandomness_SameSeedGivesDifferentModels()
    {
        var data = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[1], 40, seed: 5).ToList();
        var secret = new DpSgdOptions(NoiseMultiplier: 1.0, MaxGradNorm: 1.0, SampleRate: 0.25);
        var options = new TrainOptions { Epochs = 1, LearningRate = 0.1, Optimizer = TaggerOptimizer.Sgd, Seed = 7, Patience = 0, DpSgd = secret };

        float[] first = TrainOnce(data, options);
        float[] second = TrainOnce(data, options);
        float[] reproducible = TrainOnce(data, options with { DpSgd = secret with { ReproducibleRandomness = true } });
        float[] reproducibleAgain = TrainOnce(data, options with { DpSgd = secret with { ReproducibleRandomness = true } });

        Assert.False(first.AsSpan().SequenceEqual(second), "DP-SGD's noise and sampling must not follow from the seed");
        Assert.True(reproducible.AsSpan().SequenceEqual(reproducibleAgain), "with ReproducibleRandomness the seed fixes the run");
        Assert.False(first.AsSpan().SequenceEqual(reproducible));
    }

    [Fact]
    public void Train_DpSgdWithoutNoiseAndFullSampling_SecretAndReproducibleRandomnessAgree()
    {
        // With q = 1, no noise and no dropout nothing is random: the secret path computes the same step as the seeded one.
        TaggerConfig config = TaggerConfig.Tiny with { Dropout = 0, WordDropout = 0 };
        var data = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 12, seed: 3).ToList();
        var dp = new DpSgdOptions(NoiseMultiplier: 0, MaxGradNorm: 1.0, SampleRate: 1.0);
        var options = new TrainOptions { Epochs = 2, LearningRate = 0.1, Optimizer = TaggerOptimizer.Sgd, Patience = 0, DpSgd = dp };

        float[] secret = TrainOnce(data, options, config);
        float[] seeded = TrainOnce(data, options with { DpSgd = dp with { ReproducibleRandomness = true } }, config);

        Assert.True(secret.AsSpan().SequenceEqual(seeded));
    }

    private static float[] Train(int index)
    {
        var data = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[index % 2], 60, seed: 10 + index).ToList();
        bool dp = index % 2 == 0;
        var options = new TrainOptions
        {
            Epochs = 2,
            BatchSize = 8,
            LearningRate = dp ? 0.2 : 0.01,
            Optimizer = dp ? TaggerOptimizer.Sgd : TaggerOptimizer.Adam,
            Seed = 100 + index,
            Threads = 1,
            Patience = 0,
            DpSgd = dp ? new DpSgdOptions(NoiseMultiplier: 1.0, MaxGradNorm: 1.0, SampleRate: 0.2) { ReproducibleRandomness = true } : null,
        };
        return TrainOnce(data, options, TaggerConfig.Tiny, modelSeed: 1 + index);
    }

    private static float[] TrainOnce(List<Sentence> data, TrainOptions options, TaggerConfig? config = null, int modelSeed = 1)
    {
        using var model = TaggerModel.Create(config ?? TaggerConfig.Tiny, Labels, modelSeed, "cpu");
        new TaggerTrainer().Train(model, data, null, options);
        return model.Flatten();
    }
}
