namespace SecureFed.Tagger.Tests;

/// <summary>
/// <see cref="TrainResult.DpUnclippedCount"/>, the count adaptive clipping releases: it must count the norms the clip was
/// applied to, i.e. after the preconditioner's part before clipping, not the raw gradients' norms.
/// </summary>
public sealed class UnclippedCountTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);
    private static readonly TaggerConfig Config = TaggerConfig.Tiny with { Dropout = 0, WordDropout = 0 };
    private const int Sentences = 16;

    [Fact]
    public void Train_ClipAboveEveryNorm_EverySampledExampleUnclipped()
    {
        TrainResult result = TrainOnce(new DpSgdOptions(NoiseMultiplier: 0, MaxGradNorm: 1e9, SampleRate: 1.0) { ReproducibleRandomness = true });

        Assert.Equal(Sentences, result.DpSampledExamples);
        Assert.Equal(Sentences, result.DpUnclippedCount);
        Assert.Equal(0, result.DpClippedFraction);
    }

    [Fact]
    public void Train_ClipAtTheMedianNorm_CountsTheOthersAsClipped()
    {
        var dp = new DpSgdOptions(NoiseMultiplier: 0, MaxGradNorm: 1e9, SampleRate: 1.0) { ReproducibleRandomness = true };
        double median = TrainOnce(dp).DpMedianGradNorm;

        TrainResult atMedian = TrainOnce(dp with { MaxGradNorm = median });

        Assert.InRange(atMedian.DpUnclippedCount, (Sentences / 2) + 1, Sentences - 1); // the median is element n/2 of the sorted norms
        Assert.Equal(Sentences, atMedian.DpUnclippedCount + Math.Round(atMedian.DpClippedFraction * Sentences));
    }

    [Fact]
    public void Train_Preconditioned_CountsThePreconditionedNorms()
    {
        // Factors of 1000 on every coordinate multiply each clipped norm by 1000: a clip at the raw median leaves almost
        // nothing unclipped, a clip at 1000 times it leaves what the raw clip left.
        using var probe = TaggerModel.Create(Config, Labels, seed: 1, device: "cpu");
        float[] ones = [.. Enumerable.Repeat(1f, checked((int)probe.ParameterCount))];
        float[] thousands = [.. Enumerable.Repeat(1000f, ones.Length)];
        var dp = new DpSgdOptions(NoiseMultiplier: 0, MaxGradNorm: 1e9, SampleRate: 1.0) { ReproducibleRandomness = true, Preconditioner = ones };
        double median = TrainOnce(dp).DpMedianGradNorm;
        double clip = median * (1 + 1e-4);

        TrainResult raw = TrainOnce(dp with { MaxGradNorm = clip });
        TrainResult scaledAtRawClip = TrainOnce(dp with { MaxGradNorm = clip, Preconditioner = thousands });
        TrainResult scaledAtScaledClip = TrainOnce(dp with { MaxGradNorm = 1000 * clip, Preconditioner = thousands });

        Assert.Equal(1000 * median, TrainOnce(dp with { Preconditioner = thousands }).DpMedianGradNorm, 1000 * median * 1e-4);
        Assert.True(raw.DpUnclippedCount > Sentences / 2, $"test premise: the raw clip leaves most examples unclipped ({raw.DpUnclippedCount})");
        Assert.True(scaledAtRawClip.DpUnclippedCount < raw.DpUnclippedCount / 2, $"{scaledAtRawClip.DpUnclippedCount} unclipped at the raw clip after the factors; {raw.DpUnclippedCount} without");
        Assert.Equal(raw.DpUnclippedCount, scaledAtScaledClip.DpUnclippedCount);
    }

    private static TrainResult TrainOnce(DpSgdOptions dp)
    {
        var data = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], Sentences, seed: 3).ToList();
        var options = new TrainOptions { Epochs = 1, MaxSteps = 1, LearningRate = 0.5, Optimizer = TaggerOptimizer.Sgd, Patience = 0, Seed = 5, Threads = 1, DpSgd = dp };
        using var model = TaggerModel.Create(Config, Labels, seed: 1, device: "cpu");
        return new TaggerTrainer().Train(model, data, null, options);
    }
}
