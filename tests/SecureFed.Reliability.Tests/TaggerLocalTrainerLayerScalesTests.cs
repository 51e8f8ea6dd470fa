using SecureFed.Agent;
using SecureFed.Tagger;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The real tiny tagger under a plan with layer scales (docs/PROTOCOL.md, "Layer scales"). With no noise, no clipping
/// (C far above every gradient), q = 1, one step and no dropout nothing is random, and each example's gradient of tensor
/// i is multiplied by scale_i: the update of tensor i must be scale_i times the update without scales (up to the
/// rounding of the delta, which is the difference of two models).
/// </summary>
public sealed class TaggerLocalTrainerLayerScalesTests
{
    [Fact]
    public void Train_WithLayerScales_EachTensorsUpdateIsItsScaleTimesTheUnscaledUpdate()
    {
        var spec = new SecureFed.Agent.ModelSpec(TaggerConfig.Tiny with { WordBuckets = 256, CharNgramBuckets = 256, Dropout = 0, WordDropout = 0 }, ["Disease"]);
        float[] initial = TaggerLocalTrainer.InitialParameters(spec, seed: 1);
        using var trainer = new TaggerLocalTrainer(spec, SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 16, 1), [], "cpu", 0.05, 1, TaggerOptimizer.Sgd);
        IReadOnlyList<long> sizes = trainer.TensorSizes!;
        float[] scales = [.. sizes.Select((_, i) => (i % 3) switch { 0 => 2f, 1 => 0.5f, _ => 4f })];
        var plain = new LocalTrainingPlan(1, 1, 0.0, 1e6, 1.0) { MaxSteps = 1 };

        float[] unscaled = trainer.Train(initial, plain, CancellationToken.None).Delta;
        float[] scaled = trainer.Train(initial, plain with { LayerScales = scales }, CancellationToken.None).Delta;

        Assert.Equal(sizes.Sum(), unscaled.Length);
        Assert.True(unscaled.Any(v => v != 0), "the unscaled step moved nothing");
        long offset = 0;
        int moved = 0;
        for (int t = 0; t < sizes.Count; t++)
        {
            double dot = 0, norm = 0, error = 0;
            for (long j = offset; j < offset + sizes[t]; j++)
            {
                double expected = scales[t] * (double)unscaled[j];
                dot += expected * expected;
                norm += (double)scaled[j] * scaled[j];
                error += (scaled[j] - expected) * (scaled[j] - expected);
            }

            offset += sizes[t];
            if (dot > 0)
            {
                moved++;
                // ‖scaled − s·unscaled‖ within 1e-3 of ‖s·unscaled‖; a missing or wrong factor (2, 0.5, 4 against 1) is off by 50 % or more.
                Assert.True(Math.Sqrt(error) <= 1e-3 * Math.Sqrt(dot), $"tensor {t}: ‖scaled − {scales[t]}·unscaled‖ = {Math.Sqrt(error):G3} against ‖{scales[t]}·unscaled‖ = {Math.Sqrt(dot):G3} (‖scaled‖ = {Math.Sqrt(norm):G3})");
            }
        }

        Assert.True(moved >= 3, $"only {moved} tensors moved");
    }
}
