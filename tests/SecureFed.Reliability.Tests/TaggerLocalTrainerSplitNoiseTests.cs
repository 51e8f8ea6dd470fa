using SecureFed.Agent;
using SecureFed.Tagger;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The real tiny tagger under a split-noise plan (docs/PROTOCOL.md, "Split patient-level noise"): one DP-SGD step
/// whatever the local epochs, and Gaussian noise of σ/√k per site. With noise far larger than the clipped gradients,
/// plain SGD's update is about −lr · noise / (q·N): its L2 norm over every parameter is proportional to the noise
/// multiplier used, so k = 4 shares must halve it.
/// </summary>
public sealed class TaggerLocalTrainerSplitNoiseTests
{
    [Fact]
    public void Train_SplitIntoFourShares_OneStepWithHalfTheNoiseOfTheWholeSigma()
    {
        var spec = new SecureFed.Agent.ModelSpec(TaggerConfig.Tiny with { WordBuckets = 256, CharNgramBuckets = 256 }, ["Disease"]);
        float[] initial = TaggerLocalTrainer.InitialParameters(spec, seed: 1);
        SiteProfile profile = SyntheticClinicalCorpus.Profiles[0];
        using var trainer = new TaggerLocalTrainer(spec, SyntheticClinicalCorpus.Generate(profile, 40, 1), [], "cpu", 0.01, 1, TaggerOptimizer.Sgd);
        // σ = 8 with C = 1: the noise (norm ≈ σ/√k · √d) dwarfs the ≤ 20 clipped per-example gradients of a batch.
        var whole = new LocalTrainingPlan(1, 3, 8.0, 1.0, 0.5) { MaxSteps = 1 };
        var split = whole with { NoiseShares = 4 };

        Assert.Equal(1, trainer.ExpectedSteps(split));
        Assert.Equal(6, trainer.ExpectedSteps(whole with { MaxSteps = 0 }));
        Assert.Equal(4.0, split.SiteNoiseMultiplier, 12);

        LocalUpdate wholeUpdate = trainer.Train(initial, whole, CancellationToken.None);
        LocalUpdate splitUpdate = trainer.Train(initial, split, CancellationToken.None);

        Assert.Equal(1, wholeUpdate.DpSteps);
        Assert.Equal(1, splitUpdate.DpSteps);
        double ratio = Norm(wholeUpdate.Delta) / Norm(splitUpdate.Delta);
        Assert.InRange(ratio, 1.9, 2.1);
    }

    private static double Norm(float[] values) => Math.Sqrt(values.Sum(v => (double)v * v));
}
