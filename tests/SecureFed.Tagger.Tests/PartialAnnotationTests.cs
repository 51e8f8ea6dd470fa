using SecureFed.Tagger.Internal;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Tests;

/// <summary>
/// Partial annotation (<see cref="Sentence.AnnotatedTypes"/>): an O token of a sentence whose annotators marked only
/// some types trains on the probability of O or any label of an unmarked type; checked against the formula, against
/// plain cross-entropy when only O is allowed, and for DP-SGD's batched clipping against the per-example reference.
/// </summary>
public sealed class PartialAnnotationTests
{
    private static readonly LabelSet Labels = LabelSet.Create(["Disease", "Drug"]);
    private static readonly TaggerConfig Config = TaggerConfig.Tiny with { Dropout = 0, WordDropout = 0 };

    private static readonly Sentence[] Sentences =
    [
        new(["aspirin", "for", "migraine", "today"], ["O", "O", "B-Disease", "O"]) { AnnotatedTypes = ["Disease"] },
        new(["ibuprofen", "eases", "pain"], ["B-Drug", "O", "O"]) { AnnotatedTypes = ["Drug"] },
        new(["no", "entity", "here"], ["O", "O", "O"]),
    ];

    [Fact]
    public void Encode_AnnotatedDiseaseOnly_OTokensMayBeAnyDrugLabelButNoDiseaseLabel()
    {
        using var model = TaggerModel.Create(Config, Labels, seed: 1, device: "cpu");

        EncodedSentence encoded = model.Encode(Sentences[0]);

        bool[] allowed = encoded.OutsideAllowed!;
        for (int i = 0; i < Labels.Count; i++)
        {
            string label = Labels.Labels[i];
            Assert.Equal(label == "O" || label.EndsWith("-Drug", StringComparison.Ordinal), allowed[i]);
        }

        Assert.Null(model.Encode(Sentences[2]).OutsideAllowed);
        Assert.Null(model.Encode(Sentences[2] with { AnnotatedTypes = ["Disease", "Drug"] }).OutsideAllowed);
    }

    [Fact]
    public void SummedLoss_PartialAnnotation_MatchesMarginalLikelihoodComputedByHand()
    {
        using var model = TaggerModel.Create(Config, Labels, seed: 2, device: "cpu");
        EncodedSentence[] encoded = [.. Sentences.Select(model.Encode)];
        using var scope = NewDisposeScope();
        var batch = BatchTensors.Create(encoded, Config, model.Device, withLabels: true, wordDropout: 0, rng: null);
        model.Network.eval();

        Tensor scores = model.Network.Forward(batch);
        double loss = model.Network.SummedLoss(scores, batch).item<float>();

        float[,,] logp = ToArray(nn.functional.log_softmax(scores, -1));
        double expected = 0;
        for (int s = 0; s < encoded.Length; s++)
        {
            for (int t = 0; t < encoded[s].Length; t++)
            {
                long gold = encoded[s].Labels![t];
                bool[] allowed = gold == 0 && encoded[s].OutsideAllowed is bool[] a ? a : [.. Enumerable.Range(0, Labels.Count).Select(i => i == gold)];
                double p = Enumerable.Range(0, Labels.Count).Where(i => allowed[i]).Sum(i => Math.Exp(logp[s, t, i]));
                expected -= Math.Log(p);
            }
        }

        Assert.Equal(expected, loss, 3);
        Assert.True(encoded[0].OutsideAllowed is not null && encoded[1].OutsideAllowed is not null, "the test needs partially annotated sentences");
    }

    [Fact]
    public void SummedLoss_OnlyOAllowed_EqualsCrossEntropy()
    {
        using var model = TaggerModel.Create(Config, Labels, seed: 3, device: "cpu");
        bool[] onlyO = new bool[Labels.Count];
        onlyO[0] = true;
        EncodedSentence[] plain = [.. Sentences.Select(s => model.Encode(s.Tokens, s.Tags))];
        EncodedSentence[] forced = [.. plain.Select(e => e with { OutsideAllowed = onlyO })];
        using var scope = NewDisposeScope();
        model.Network.eval();

        var plainBatch = BatchTensors.Create(plain, Config, model.Device, withLabels: true, wordDropout: 0, rng: null);
        var forcedBatch = BatchTensors.Create(forced, Config, model.Device, withLabels: true, wordDropout: 0, rng: null);
        Assert.Null(plainBatch.OutsideAllowed);
        Assert.NotNull(forcedBatch.OutsideAllowed);
        double crossEntropy = model.Network.SummedLoss(model.Network.Forward(plainBatch), plainBatch).item<float>();
        double partial = model.Network.SummedLoss(model.Network.Forward(forcedBatch), forcedBatch).item<float>();

        Assert.Equal(crossEntropy, partial, 4);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.05)]
    public void ClippedSum_PartialAnnotation_BatchedEqualsPerExampleReference(double maxNorm)
    {
        using var model = TaggerModel.Create(Config, Labels, seed: 4, device: "cpu");
        EncodedSentence[] batch = [.. Sentences.Select(model.Encode)];
        using var scope = NewDisposeScope();

        Tensor[] reference = TaggerTrainer.ClippedSum(model, batch, new DpSgdOptions(0, maxNorm, 0.1) { PerExampleLoop = true }, new Random(1), out double referenceLoss);
        Tensor[] batched = TaggerTrainer.ClippedSum(model, batch, new DpSgdOptions(0, maxNorm, 0.1), new Random(1), out double batchedLoss);

        Assert.Equal(referenceLoss, batchedLoss, 3);
        for (int i = 0; i < reference.Length; i++)
        {
            float[] want = reference[i].data<float>().ToArray();
            float[] got = batched[i].data<float>().ToArray();
            double worst = want.Zip(got, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-5, $"parameter {i}: largest difference {worst:E2}");
        }
    }

    private static float[,,] ToArray(Tensor t)
    {
        var result = new float[t.shape[0], t.shape[1], t.shape[2]];
        float[] flat = t.contiguous().data<float>().ToArray();
        Buffer.BlockCopy(flat, 0, result, 0, flat.Length * sizeof(float));
        return result;
    }
}
