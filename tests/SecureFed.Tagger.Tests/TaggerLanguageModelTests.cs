using SecureFed.Tagger.Internal;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Tests;

public sealed class TaggerLanguageModelTests
{
    private static readonly LabelSet Labels = LabelSet.Create(["Disease"]);

    private static readonly string[][] Corpus =
    [
        ["the", "patient", "has", "a", "rare", "disease", "."],
        ["the", "child", "has", "a", "rare", "syndrome", "."],
        ["a", "rare", "disease", "of", "the", "kidney", "."],
        ["the", "patient", "was", "treated", "with", "insulin", "."],
        ["the", "child", "was", "treated", "with", "aspirin", "."],
        ["mutations", "cause", "a", "rare", "syndrome", "in", "the", "child", "."],
    ];

    [Fact]
    public void Pretrain_EveryStepNotFinite_DivergedErrorNotLossZero()
    {
        // With non-finite steps skipped, an epoch whose every step was skipped reported loss 0 and perplexity 1, and the
        // encoder was kept as if pretrained (review of the GradientGuard change); the tagger's trainer says it diverged.
        using var model = TaggerModel.Create(TaggerConfig.TinyCrf, Labels, seed: 1, device: "cpu");
        float[] weights = model.Flatten();
        Array.Fill(weights, float.NaN);
        model.Unflatten(weights);
        IReadOnlyList<string>[] text = [.. Enumerable.Repeat(Corpus, 10).SelectMany(c => c)];

        InvalidOperationException ex = Assert.Throws<InvalidOperationException>(() => new TaggerLanguageModel().Pretrain(model, text,
            new LanguageModelOptions { Epochs = 2, BatchSize = 8, LearningRate = 0.01, Seed = 1, Threads = 1 }, null));

        Assert.StartsWith("Pretraining diverged in epoch 1: the loss or its gradient was not a finite number at every one of its", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pretrain_TinyCorpus_LossFallsAndOnlyTheEncoderMoves()
    {
        using var model = TaggerModel.Create(TaggerConfig.TinyCrf, Labels, seed: 1, device: "cpu");
        float[] before = model.Flatten();
        IReadOnlyList<string>[] text = [.. Enumerable.Repeat(Corpus, 10).SelectMany(c => c)];
        var reports = new List<TrainProgress>();

        LanguageModelResult result = new TaggerLanguageModel().Pretrain(model, text,
            new LanguageModelOptions { Epochs = 5, BatchSize = 8, LearningRate = 0.01, Seed = 1, Threads = 1 }, new SyncProgress(reports.Add));

        Assert.Equal(5, result.EpochLosses.Count);
        Assert.True(result.EpochLosses[^1] < result.EpochLosses[0] - 1.0, $"losses {string.Join(", ", result.EpochLosses)}");
        Assert.True(result.Perplexity < TaggerConfig.TinyCrf.WordBuckets / 10.0, $"perplexity {result.Perplexity}");
        Assert.Equal(2 * Corpus.Sum(s => s.Length - 1) * 10, result.Predictions);
        Assert.Equal(5, reports.Count(r => r.EpochCompleted));
        float[] after = model.Flatten();
        long offset = 0;
        foreach (ParameterInfo p in model.ParameterLayout)
        {
            long n = p.Shape.Aggregate(1L, (a, d) => a * d);
            bool moved = Enumerable.Range((int)offset, (int)n).Any(i => before[i] != after[i]);
            bool encoder = !p.Name.StartsWith("head.", StringComparison.Ordinal) && !p.Name.StartsWith("crf.", StringComparison.Ordinal);
            Assert.True(moved == encoder, $"{p.Name}: moved {moved}, encoder {encoder}");
            offset += n;
        }
    }

    [Fact]
    public void EncoderStates_ChangingTokenIPlusOne_LeavesForwardStatesUpToIAndBackwardStatesAfterItUnchanged()
    {
        using var model = TaggerModel.Create(TaggerConfig.TinyCrf, Labels, seed: 3, device: "cpu");
        string[] tokens = ["mutations", "cause", "a", "rare", "syndrome", "in", "the", "child", "."];
        const int changed = 4; // token i + 1 for i = 3
        string[] altered = [.. tokens];
        altered[changed] = "Nephropathy-2";
        int hidden = model.Config.Hidden;

        float[,] original = States(model, tokens);
        float[,] other = States(model, altered);

        for (int t = 0; t < tokens.Length; t++)
        {
            bool forwardSame = Enumerable.Range(0, hidden).All(h => original[t, h] == other[t, h]);
            bool backwardSame = Enumerable.Range(hidden, hidden).All(h => original[t, h] == other[t, h]);
            Assert.True(forwardSame == (t < changed), $"forward state at {t}: unchanged {forwardSame}");
            Assert.True(backwardSame == (t > changed), $"backward state at {t}: unchanged {backwardSame}");
        }
    }

    [Fact]
    public void Targets_ForwardIsTheNextWordBackwardThePreviousOne_PaddingIgnored()
    {
        using var model = TaggerModel.Create(TaggerConfig.TinyCrf, Labels, seed: 1, device: "cpu");
        EncodedSentence a = model.Encode(["a", "rare", "disease"], null);
        EncodedSentence b = model.Encode(["insulin"], null);
        const long ignore = BatchTensors.IgnoreIndex;

        (long[] forward, long[] backward) = TaggerLanguageModel.Targets([a, b], width: 4);

        Assert.Equal([a.Words[1], a.Words[2], ignore, ignore, ignore, ignore, ignore, ignore], forward);
        Assert.Equal([ignore, a.Words[0], a.Words[1], ignore, ignore, ignore, ignore, ignore], backward);
    }

    [Fact]
    public void Pretrain_ModelWithThePretrainedEncoder_IsRefused()
    {
        using var model = TaggerModel.Create(TaggerConfig.TinyEncoder, Labels, seed: 1, device: "cpu");

        NotSupportedException error = Assert.Throws<NotSupportedException>(() =>
            new TaggerLanguageModel().Pretrain(model, Corpus, new LanguageModelOptions()));

        Assert.Contains("minilm-l6-v2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pretrain_TwoLayerEncoder_IsRefused()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny with { Layers = 2 }, Labels, seed: 1, device: "cpu");

        NotSupportedException error = Assert.Throws<NotSupportedException>(() =>
            new TaggerLanguageModel().Pretrain(model, Corpus, new LanguageModelOptions()));

        Assert.Contains("one-layer", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pretrain_OnlyEmptySentences_Throws() =>
        Assert.Throws<ArgumentException>(() =>
        {
            using var model = TaggerModel.Create(TaggerConfig.TinyCrf, Labels, seed: 1, device: "cpu");
            new TaggerLanguageModel().Pretrain(model, [Array.Empty<string>()], new LanguageModelOptions());
        });

    /// <summary>The encoder's states [T, 2 * Hidden] of one sentence in eval mode (no dropout).</summary>
    private static float[,] States(TaggerModel model, string[] tokens)
    {
        model.Network.eval();
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        BatchTensors batch = BatchTensors.Create([model.Encode(tokens, null)], model.Config, model.Device, withLabels: false, 0, null);
        Tensor states = model.Network.EncoderStates(batch).squeeze(0).contiguous();
        float[] values = states.data<float>().ToArray();
        int width = (int)states.shape[1];
        var result = new float[tokens.Length, width];
        for (int t = 0; t < tokens.Length; t++)
        {
            for (int h = 0; h < width; h++)
            {
                result[t, h] = values[(t * width) + h];
            }
        }

        return result;
    }
}
