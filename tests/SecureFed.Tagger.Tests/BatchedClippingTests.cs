using SecureFed.Tagger.Internal;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Tests;

/// <summary>
/// The batched DP-SGD gradient (one forward, one backward) against the per-example reference (one backward pass per
/// example, clipped and summed): the same clipped sum within 1e-5 on every coordinate of every parameter.
/// </summary>
public sealed class BatchedClippingTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);

    public static TheoryData<string, double> Configs => new()
    {
        { "tiny-softmax", 1.0 },
        { "tiny-softmax", 0.05 },
        { "two-layer-crf", 1.0 },
        { "two-layer-crf", 0.05 },
        { "two-layer-crf", 1e6 },
        { "tiny-encoder", 1.0 },
        { "tiny-crf-encoder", 0.05 },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void ClippedSum_Batched_EqualsPerExampleReference(string configName, double maxNorm)
    {
        TaggerConfig config = (configName switch
        {
            "tiny-softmax" => TaggerConfig.Tiny,
            "tiny-encoder" => TaggerConfig.TinyEncoder,
            "tiny-crf-encoder" => TaggerConfig.TinyCrfEncoder with { Hidden = 12 },
            _ => TaggerConfig.Tiny with { Layers = 2, Crf = true, Hidden = 12 },
        }) with { Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 3, device: "cpu");
        EncodedSentence[] batch = Batch(model);
        using var scope = NewDisposeScope();

        Tensor[] reference = TaggerTrainer.ClippedSum(model, batch, new DpSgdOptions(0, maxNorm, 0.1) { PerExampleLoop = true }, new Random(1), out double referenceLoss);
        Tensor[] batched = TaggerTrainer.ClippedSum(model, batch, new DpSgdOptions(0, maxNorm, 0.1), new Random(1), out double batchedLoss);

        Assert.Equal(referenceLoss, batchedLoss, 3);
        string[] names = [.. model.ParameterLayout.Select(p => p.Name)];
        for (int i = 0; i < reference.Length; i++)
        {
            float[] want = reference[i].data<float>().ToArray();
            float[] got = batched[i].data<float>().ToArray();
            double worst = want.Zip(got, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-5, $"{names[i]}: largest difference {worst:E2}");
            if (names[i] is "word_emb.weight" or "encoder.weight_hh_l0_reverse" or "head.weight")
            {
                Assert.True(want.Any(x => x != 0), $"{names[i]} has an all-zero reference gradient: the test would prove nothing");
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ClippedSum_BatchLargerThanOneChunk_SummedInChunksEqualsPerExampleReference(bool encoder)
    {
        // 150 sentences: chunks of 64, 64 and 22 (TaggerTrainer.ClippingChunk), each clipped example in exactly one.
        TaggerConfig config = (encoder ? TaggerConfig.TinyCrfEncoder with { Hidden = 8 } : TaggerConfig.Tiny) with { Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 4, device: "cpu");
        EncodedSentence[] batch = [.. SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[1], 150, seed: 12).Select(s => model.Encode(s.Tokens, s.Tags))];
        Assert.True(batch.Length > 2 * TaggerTrainer.ClippingChunk);
        using var scope = NewDisposeScope();
        var norms = new List<double>();

        Tensor[] reference = TaggerTrainer.ClippedSum(model, batch, new DpSgdOptions(0, 0.5, 0.1) { PerExampleLoop = true }, new Random(1), out double referenceLoss);
        Tensor[] chunked = TaggerTrainer.ClippedSum(model, batch, new DpSgdOptions(0, 0.5, 0.1), new Random(1), out double chunkedLoss, norms, null);

        Assert.Equal(batch.Length, norms.Count);
        Assert.Equal(referenceLoss, chunkedLoss, 2);
        string[] names = [.. model.ParameterLayout.Select(p => p.Name)];
        for (int i = 0; i < reference.Length; i++)
        {
            float[] want = reference[i].data<float>().ToArray();
            float[] got = chunked[i].data<float>().ToArray();
            double worst = want.Zip(got, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 5e-5, $"{names[i]}: largest difference {worst:E2}");
        }
    }

    [Fact]
    public void ClippedSum_SmallClipNorm_EveryExampleContributesAtMostC()
    {
        // With C tiny, each example's clipped gradient has norm C, so the sum's norm is at most B * C.
        TaggerConfig config = TaggerConfig.Tiny with { Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 5, device: "cpu");
        EncodedSentence[] batch = Batch(model);
        using var scope = NewDisposeScope();

        Tensor[] sum = TaggerTrainer.ClippedSum(model, batch, new DpSgdOptions(0, 1e-3, 0.1), new Random(1), out _);
        double norm = Math.Sqrt(sum.Sum(t => t.to(ScalarType.Float64).square().sum().item<double>()));

        Assert.InRange(norm, 1e-4, (batch.Length * 1e-3) + 1e-9);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ClippedSum_FrozenEmbeddings_TablesGetZerosAndTheRestMatchesTheReference(bool crf)
    {
        TaggerConfig config = (crf ? TaggerConfig.Tiny with { Crf = true, Hidden = 12 } : TaggerConfig.Tiny) with { Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 7, device: "cpu");
        EncodedSentence[] batch = Batch(model);
        using var scope = NewDisposeScope();
        var frozen = new DpSgdOptions(0, 0.05, 0.1) { FreezeEmbeddings = true };

        Tensor[] reference = TaggerTrainer.ClippedSum(model, batch, frozen with { PerExampleLoop = true }, new Random(1), out _);
        Tensor[] batched = TaggerTrainer.ClippedSum(model, batch, frozen, new Random(1), out _);
        Tensor[] unfrozen = TaggerTrainer.ClippedSum(model, batch, new DpSgdOptions(0, 0.05, 0.1), new Random(1), out _);

        string[] names = [.. model.ParameterLayout.Select(p => p.Name)];
        for (int i = 0; i < names.Length; i++)
        {
            float[] want = reference[i].data<float>().ToArray();
            float[] got = batched[i].data<float>().ToArray();
            Assert.True(want.Zip(got, (a, b) => Math.Abs(a - b)).Max() <= 1e-5, $"{names[i]} differs from the per-example reference");
            if (names[i].EndsWith("_emb.weight", StringComparison.Ordinal))
            {
                Assert.True(got.All(x => x == 0) && want.All(x => x == 0), $"{names[i]} is frozen but got a gradient");
                Assert.Contains(unfrozen[i].data<float>().ToArray(), x => x != 0);
            }
        }

        // The norm is over the trained parameters only: every example's clipped share of them has norm exactly C
        // (C is far below each unclipped norm), so the trained part's sum is larger than with the tables in the norm.
        double Norm(Tensor[] sums) => Math.Sqrt(names.Select((n, i) => (n, i)).Where(x => !x.n.EndsWith("_emb.weight", StringComparison.Ordinal))
            .Sum(x => sums[x.i].to(ScalarType.Float64).square().sum().item<double>()));
        Assert.True(Norm(batched) > Norm(unfrozen), "freezing the tables should leave the rest of each example's gradient less clipped");
        Assert.InRange(Norm(batched), 1e-3, (batch.Length * 0.05) + 1e-9);
    }

    [Theory]
    [InlineData(false, 0.05)]
    [InlineData(true, 0.05)]
    [InlineData(true, 1e6)]
    public void ClippedSum_Preconditioned_EqualsPerExampleReferenceOfScaledGradients(bool crf, double maxNorm)
    {
        TaggerConfig config = (crf ? TaggerConfig.Tiny with { Crf = true, Hidden = 12 } : TaggerConfig.Tiny) with { Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 11, device: "cpu");
        EncodedSentence[] batch = Batch(model);
        using var scope = NewDisposeScope();
        var rng = new Random(5);
        float[] factors = [.. Enumerable.Range(0, checked((int)model.ParameterCount)).Select(_ => (float)Math.Exp((rng.NextDouble() * 6) - 3))];
        var plain = new DpSgdOptions(0, maxNorm, 0.1);
        var preconditioned = plain with { Preconditioner = factors };

        Tensor[] reference = TaggerTrainer.ClippedSum(model, batch, preconditioned with { PerExampleLoop = true }, new Random(1), out _);
        Tensor[] batched = TaggerTrainer.ClippedSum(model, batch, preconditioned, new Random(1), out _);
        Tensor[] unscaled = TaggerTrainer.ClippedSum(model, batch, plain, new Random(1), out _);
        Tensor[] ones = TaggerTrainer.ClippedSum(model, batch, plain with { Preconditioner = [.. factors.Select(_ => 1f)] }, new Random(1), out _);

        string[] names = [.. model.ParameterLayout.Select(p => p.Name)];
        int offset = 0;
        for (int i = 0; i < names.Length; i++)
        {
            float[] want = reference[i].data<float>().ToArray();
            float[] got = batched[i].data<float>().ToArray();
            double scale = Math.Max(1, want.Max(Math.Abs));
            Assert.True(want.Zip(got, (a, b) => Math.Abs(a - b)).Max() <= 1e-5 * scale, $"{names[i]} differs from the per-example reference");
            // Equal to float rounding, not bit for bit: without a preconditioner the LSTM maps' norms and sums are
            // taken without materialising each example's gradient (ghost norms), with one they are materialised.
            float[] plainValues = unscaled[i].data<float>().ToArray();
            float[] oneValues = ones[i].data<float>().ToArray();
            Assert.True(plainValues.Zip(oneValues, (a, b) => Math.Abs(a - b)).Max() <= 1e-6 * Math.Max(1, plainValues.Max(Math.Abs)), $"{names[i]}: a preconditioner of ones changes the sum");
            if (maxNorm > 1e5)
            {
                // Nothing is clipped: the sum is exactly A ⊙ (the plain sum).
                float[] plainSum = unscaled[i].data<float>().ToArray();
                for (int j = 0; j < got.Length; j++)
                {
                    Assert.True(Math.Abs(got[j] - (factors[offset + j] * plainSum[j])) <= 1e-4 * Math.Max(1, Math.Abs(got[j])), $"{names[i]}[{j}] is not A ⊙ g");
                }
            }

            offset += got.Length;
        }
    }

    [Fact]
    public void ClippedSum_PreconditionerOfWrongLength_NamesTheMismatch()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, seed: 1, device: "cpu");
        EncodedSentence[] batch = Batch(model);
        var dp = new DpSgdOptions(0, 1, 0.1) { Preconditioner = [1f, 2f] };

        var e = Assert.Throws<ArgumentException>(() => TaggerTrainer.ClippedSum(model, batch, dp, new Random(1), out _));
        Assert.Contains("2 factors", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(-1f)]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void Validate_PreconditionerFactorNotPositiveFinite_Throws(float bad)
    {
        var dp = new DpSgdOptions(1, 1, 0.1) { Preconditioner = [1f, bad, 1f] };

        var e = Assert.Throws<ArgumentException>(dp.Validate);
        Assert.Contains("Preconditioner[1]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Train_DpSgdFrozenEmbeddings_TablesUnchangedOthersTrained()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, seed: 9, device: "cpu");
        var train = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 60, seed: 4).ToList();
        var before = model.ParameterLayout.Zip(model.Parameters, (l, p) => (l.Name, Values: p.Tensor.data<float>().ToArray())).ToList();

        new TaggerTrainer().Train(model, train, null, new TrainOptions
        {
            Epochs = 1,
            MaxSteps = 3,
            Patience = 0,
            LearningRate = 0.01,
            DpSgd = new DpSgdOptions(1.0, 1.0, 0.3) { FreezeEmbeddings = true },
        }, null);

        foreach (((string name, float[] old), (_, Parameter p)) in before.Zip(model.Parameters))
        {
            float[] now = p.data<float>().ToArray();
            if (name.EndsWith("_emb.weight", StringComparison.Ordinal))
            {
                Assert.True(old.AsSpan().SequenceEqual(now), $"{name} moved although frozen");
            }
            else
            {
                Assert.False(old.AsSpan().SequenceEqual(now), $"{name} did not move: DP-SGD trained nothing");
            }
        }
    }

    /// <summary>Sentences of different lengths (padding), a word repeated inside one sentence (rows hit twice) and one token.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ClippedSum_NoDropout_EqualsTheModelWithoutDropoutWhateverTheRandomness(bool perExampleLoop)
    {
        // Large dropout and word dropout, the network in training mode: without NoDropout the clipped sum depends on the
        // random masks; with it, it equals the same weights configured without dropout, for any seed.
        TaggerConfig withDropout = TaggerConfig.Tiny with { Crf = true, Hidden = 12, Dropout = 0.5, WordDropout = 0.25 };
        using var model = TaggerModel.Create(withDropout, Labels, seed: 13, device: "cpu");
        using var plainModel = TaggerModel.Create(withDropout with { Dropout = 0, WordDropout = 0 }, Labels, seed: 13, device: "cpu");
        Assert.Equal(model.Flatten(), plainModel.Flatten());
        EncodedSentence[] batch = Batch(model);
        using var scope = NewDisposeScope();
        var dp = new DpSgdOptions(0, 0.5, 0.1) { PerExampleLoop = perExampleLoop };

        Tensor[] off1 = TaggerTrainer.ClippedSum(model, batch, dp with { NoDropout = true }, new Random(1), out _);
        Tensor[] off2 = TaggerTrainer.ClippedSum(model, batch, dp with { NoDropout = true }, new Random(2), out _);
        Tensor[] reference = TaggerTrainer.ClippedSum(plainModel, batch, dp, new Random(3), out _);
        Tensor[] on1 = TaggerTrainer.ClippedSum(model, batch, dp, new Random(1), out _);
        Tensor[] on2 = TaggerTrainer.ClippedSum(model, batch, dp, new Random(2), out _);

        Assert.True(model.Network.training, "the network must be back in training mode after the clipped sum");
        string[] names = [.. model.ParameterLayout.Select(p => p.Name)];
        bool dropoutChangedSomething = false;
        for (int i = 0; i < names.Length; i++)
        {
            float[] want = reference[i].data<float>().ToArray();
            Assert.Equal(off1[i].data<float>().ToArray(), off2[i].data<float>().ToArray());
            Assert.True(want.Zip(off1[i].data<float>().ToArray(), (a, b) => Math.Abs(a - b)).Max() <= 1e-6, $"{names[i]} differs from the model without dropout");
            dropoutChangedSomething |= !on1[i].data<float>().ToArray().SequenceEqual(on2[i].data<float>().ToArray());
        }

        Assert.True(dropoutChangedSomething, "with dropout the two seeds should give different sums: the test would prove nothing");
    }

    public static TheoryData<int, int, bool, string> GhostCases => new()
    {
        { 20, 2, true, "mixed" },
        { 20, 2, true, "one" },
        { 7, 1, false, "mixed" },
        { 7, 1, false, "long" },
    };

    /// <summary>
    /// Ghost norms (each example's LSTM and head gradient norms from Gram matrices, the clipped sums from one product)
    /// and materialised per-example gradients, each forced, and the cost-based choice between them: the same norms and
    /// clipped sums as the per-example reference, for hidden sizes other than the other tests' 12, a batch of one
    /// sentence, and sentences of very different lengths (the reverse direction reverses each within its own length).
    /// </summary>
    [Theory]
    [MemberData(nameof(GhostCases))]
    public void ClippedSum_GhostOrMaterialisedNorms_EqualPerExampleReference(int hidden, int layers, bool crf, string sentences)
    {
        TaggerConfig config = TaggerConfig.Tiny with { Hidden = hidden, Layers = layers, Crf = crf, Dropout = 0, WordDropout = 0 };
        using var model = TaggerModel.Create(config, Labels, seed: 17, device: "cpu");
        EncodedSentence[] batch = sentences switch
        {
            "one" => [Batch(model)[0]],
            "long" => [.. Batch(model).Append(LongSentence(model, 60))],
            _ => [.. Batch(model).Append(LongSentence(model, 23))],
        };
        using var scope = NewDisposeScope();
        var referenceNorms = new List<double>();
        Tensor[] reference = TaggerTrainer.ClippedSum(model, batch, new DpSgdOptions(0, 0.05, 0.1) { PerExampleLoop = true }, new Random(1), out _, referenceNorms, null);

        string[] names = [.. model.ParameterLayout.Select(p => p.Name)];
        foreach (bool? ghost in new bool?[] { true, false, null })
        {
            var tensors = BatchTensors.Create(batch, model.Config, model.Device, withLabels: true, 0, new Random(1));
            Tensor[] batched = BatchedClipping.ClippedSum(model, tensors, 0.05, _ => true, out _, out Tensor norms, ghostNorms: ghost);

            double[] got = norms.data<double>().ToArray();
            for (int i = 0; i < got.Length; i++)
            {
                Assert.True(Math.Abs(got[i] - referenceNorms[i]) <= 1e-5 * referenceNorms[i], $"ghost {ghost}: sentence {i}'s norm {got[i]} against {referenceNorms[i]}");
            }

            for (int i = 0; i < names.Length; i++)
            {
                float[] want = reference[i].data<float>().ToArray();
                float[] sum = batched[i].data<float>().ToArray();
                Assert.True(want.Zip(sum, (a, b) => Math.Abs(a - b)).Max() <= 1e-5, $"ghost {ghost}: {names[i]} differs from the per-example reference");
            }
        }

        Assert.Contains(referenceNorms, n => n > 0.05); // some sentence is clipped: wrong norms would change the sums
    }

    /// <summary>A labelled sentence of <paramref name="length"/> tokens, longer than the synthetic ones.</summary>
    private static EncodedSentence LongSentence(TaggerModel model, int length)
    {
        string[] words = ["patient", "reports", "severe", "headache", "after", "taking", "ibuprofen", "and"];
        string[] tokens = [.. Enumerable.Range(0, length).Select(i => words[i % words.Length])];
        string[] tags = [.. tokens.Select(w => w switch { "headache" => "B-Symptom", "ibuprofen" => "B-Drug", _ => "O" })];
        return model.Encode(tokens, tags);
    }

    private static EncodedSentence[] Batch(TaggerModel model)
    {
        var sentences = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 6, seed: 11).ToList();
        sentences.Add(new Sentence(["fever", "and", "fever", "and", "cough"], ["B-Symptom", "O", "B-Symptom", "O", "B-Symptom"]));
        sentences.Add(new Sentence(["aspirin"], ["B-Drug"]));
        return [.. sentences.Select(s => model.Encode(s.Tokens, s.Tags))];
    }
}
