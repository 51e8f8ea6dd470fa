using SecureFed.Tagger.Internal;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Tests;

/// <summary>
/// Projected DP-SGD (<see cref="TaggerGradientSubspace"/>): the batched per-example gradients against the per-example
/// reference, the subspace's basis, the projected clipped sum against its reference, and training with it.
/// </summary>
public sealed class GradientSubspaceTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void PerExampleGradients_Batched_EqualsOneBackwardPassPerExample(bool crf, bool frozen)
    {
        TaggerConfig config = (crf ? TaggerConfig.Tiny with { Layers = 2, Crf = true, Hidden = 12 } : TaggerConfig.Tiny) with { Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 3, device: "cpu");
        EncodedSentence[] batch = Batch(model);
        var dp = new DpSgdOptions(0, 1, 0.1) { FreezeEmbeddings = frozen };
        using var scope = NewDisposeScope();

        var tensors = BatchTensors.Create(batch, config, model.Device, withLabels: true, wordDropout: 0, new Random(1));
        Tensor batched = BatchedClipping.PerExampleGradients(model, tensors, dp.Trains, out double loss);

        Assert.Equal([batch.Length, model.ParameterCount], batched.shape);
        double referenceLoss = 0;
        for (int e = 0; e < batch.Length; e++)
        {
            Tensor[] grads = TaggerTrainer.PerExampleGradient(model, batch[e], new Random(1), out double l);
            referenceLoss += l;
            float[] want = [.. model.Parameters.Select((p, i) => dp.Trains(p.Name) ? grads[i] : zeros_like(grads[i])).SelectMany(g => g.reshape(-1).data<float>().ToArray())];
            float[] got = batched[e].data<float>().ToArray();
            double worst = want.Zip(got, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-5, $"example {e}: largest difference {worst:E2}");
            Assert.True(want.Any(x => x != 0), $"example {e} has an all-zero reference gradient: the test would prove nothing");
        }

        Assert.Equal(referenceLoss, loss, 3);
    }

    [Fact]
    public void FromPublicData_Basis_HasOrthonormalRowsAndCapturesThePublicGradients()
    {
        TaggerConfig config = TaggerConfig.Tiny with { Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 4, device: "cpu");
        IReadOnlyList<Sentence> publicData = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[1], 40, seed: 5);
        using var subspace = TaggerGradientSubspace.FromPublicData(model, publicData, dimension: 8, maxSentences: 40);
        using var scope = NewDisposeScope();

        Tensor v = subspace.Basis(model.Device).to(ScalarType.Float64);
        Tensor gram = v.matmul(v.t());
        double worst = gram.sub(eye(8, dtype: ScalarType.Float64)).abs().max().item<double>();

        Assert.True(worst < 1e-3, $"V Vᵀ differs from the identity by {worst:E2}");
        Assert.Equal(8, subspace.Dimension);
        Assert.Equal(model.ParameterCount, subspace.ParameterCount);
        Assert.InRange(subspace.ExplainedShare, 0.2, 1.0);
    }

    [Fact]
    public void FromPublicData_FewerSentencesThanDimensions_NamesTheShortfall()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, seed: 4, device: "cpu");
        IReadOnlyList<Sentence> publicData = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[1], 5, seed: 5);

        var error = Assert.Throws<ArgumentException>(() => TaggerGradientSubspace.FromPublicData(model, publicData, dimension: 8, maxSentences: 100));

        Assert.Contains("needs at least as many", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.01)]
    public void ProjectedClippedSum_Batched_EqualsPerExampleReferenceAndEachExampleContributesAtMostC(double maxNorm)
    {
        TaggerConfig config = TaggerConfig.Tiny with { Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 6, device: "cpu");
        IReadOnlyList<Sentence> publicData = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[2], 30, seed: 7);
        float[] scale = [.. Enumerable.Range(0, (int)model.ParameterCount).Select(i => 0.5f + (i % 3))];
        using var subspace = TaggerGradientSubspace.FromPublicData(model, publicData, dimension: 6, maxSentences: 30, scale);
        EncodedSentence[] batch = Batch(model);
        using var scope = NewDisposeScope();
        Tensor basis = subspace.Basis(model.Device);
        Tensor[] preconditioner = [.. Split(model, scale)];

        var norms = new List<double>();
        Tensor reference = TaggerTrainer.ProjectedClippedSum(model, batch, new DpSgdOptions(0, maxNorm, 0.1) { PerExampleLoop = true }, new Random(1), basis, preconditioner, norms, out _);
        Tensor batched = TaggerTrainer.ProjectedClippedSum(model, batch, new DpSgdOptions(0, maxNorm, 0.1), new Random(1), basis, preconditioner, null, out _);

        double worst = reference.sub(batched).abs().max().item<float>();
        Assert.True(worst <= 1e-5, $"largest difference {worst:E2}");
        Assert.True(reference.abs().max().item<float>() > 0, "an all-zero projected sum: the test would prove nothing");
        Assert.Equal(batch.Length, norms.Count);
        double expected = norms.Sum(n => Math.Min(n, maxNorm));
        Assert.True(reference.norm().item<float>() <= expected + 1e-5, "the projected sum is longer than the examples' clipped norms allow");
        if (maxNorm < 0.1)
        {
            Assert.All(norms, n => Assert.True(n > maxNorm, "the small C should clip every example"));
        }
    }

    [Fact]
    public void Train_ProjectedDpSgd_MovesTheModelOnlyWithinTheSubspace()
    {
        TaggerConfig config = TaggerConfig.Tiny with { Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 8, device: "cpu");
        IReadOnlyList<Sentence> publicData = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 30, seed: 9);
        IReadOnlyList<Sentence> train = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[1], 60, seed: 10);
        using var subspace = TaggerGradientSubspace.FromPublicData(model, publicData, dimension: 5, maxSentences: 30);
        float[] before = model.Flatten();

        TrainResult result = new TaggerTrainer().Train(model, train, null, new TrainOptions
        {
            Epochs = 1,
            Optimizer = TaggerOptimizer.Sgd,
            LearningRate = 0.5,
            Seed = 3,
            DpSgd = new DpSgdOptions(1.0, 1.0, 0.2) { Subspace = subspace, ReproducibleRandomness = true },
        }, null, CancellationToken.None);

        float[] after = model.Flatten();
        using var scope = NewDisposeScope();
        Tensor delta = tensor(after.Zip(before, (a, b) => (double)a - b).ToArray());
        Tensor v = subspace.Basis(model.Device).to(ScalarType.Float64);
        Tensor inside = v.t().matmul(v.matmul(delta));
        double moved = delta.norm().item<double>();
        double outside = delta.sub(inside).norm().item<double>();

        Assert.True(result.DpSteps > 0);
        Assert.True(moved > 1e-4, $"DP-SGD moved the model by only {moved:E2}");
        Assert.True(outside < 1e-3 * moved, $"{outside:E2} of the step ({moved:E2}) lies outside the public subspace");
    }

    private static IEnumerable<Tensor> Split(TaggerModel model, float[] flat)
    {
        int offset = 0;
        foreach ((_, var p) in model.Parameters)
        {
            int n = (int)p.numel();
            yield return tensor(flat.AsSpan(offset, n).ToArray(), p.shape);
            offset += n;
        }
    }

    private static EncodedSentence[] Batch(TaggerModel model)
    {
        var sentences = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 6, seed: 11).ToList();
        sentences.Add(new Sentence(["fever", "and", "fever", "and", "cough"], ["B-Symptom", "O", "B-Symptom", "O", "B-Symptom"]));
        sentences.Add(new Sentence(["aspirin"], ["B-Drug"]));
        return [.. sentences.Select(s => model.Encode(s.Tokens, s.Tags))];
    }
}
