using System.Diagnostics;
using System.Globalization;
using SecureFed.Tagger.Internal;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger;

/// <summary>
/// Self-supervised pretraining of a tagger's encoder on unlabelled text with a bidirectional language-model objective
/// (ELMo: Peters et al., NAACL 2018): the forward LSTM direction's state at token i predicts the hashed word bucket of
/// token i + 1, the backward direction's state at token i predicts token i − 1's, through one softmax over the
/// configuration's <see cref="TaggerConfig.WordBuckets"/> shared by both directions. The output layer is thrown away;
/// the embeddings (word, shape, character n-gram, character CNN) and the BiLSTM keep what they learned, and the head
/// and CRF are not touched.
/// </summary>
/// <remarks>
/// A direction never sees the token it predicts: the forward state at i has read tokens 0 … i, the backward state
/// tokens i … T − 1, and each token's input features are its own. That holds for a one-layer BiLSTM only (a stacked
/// layer's forward direction reads the layer below's backward states, which have read the whole sentence), so
/// configurations with <see cref="TaggerConfig.Layers"/> &gt; 1 are refused, and so are those with a pretrained
/// <see cref="TaggerConfig.Encoder"/> (its vectors have read the whole sentence). The targets are the unaltered buckets
/// (word dropout hides input words only).
/// </remarks>
public sealed class TaggerLanguageModel
{
    private const int ReportEverySteps = 200;

    /// <summary>Trains <paramref name="model"/>'s encoder in place on <paramref name="sentences"/>.</summary>
    /// <param name="model">The tagger whose encoder is pretrained (one-layer BiLSTM).</param>
    /// <param name="sentences">Tokenised sentences (no labels); empty ones are skipped.</param>
    /// <param name="options">Training options.</param>
    /// <param name="progress">Optional progress sink: every 200 steps and at the end of each epoch (loss = mean cross-entropy per predicted token).</param>
    /// <param name="cancellationToken">Cancels between steps.</param>
    /// <returns>Losses per epoch, steps and throughput.</returns>
    /// <exception cref="NotSupportedException">The model's encoder has more than one layer.</exception>
    public LanguageModelResult Pretrain(
        TaggerModel model,
        IReadOnlyList<IReadOnlyList<string>> sentences,
        LanguageModelOptions options,
        IProgress<TrainProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (model.Config.Layers != 1)
        {
            throw new NotSupportedException(
                $"the language-model objective needs a one-layer BiLSTM (this config has {model.Config.Layers} layers: a stacked layer's forward direction reads the backward states below, which have seen the token it predicts)");
        }

        if (model.Config.Encoder.Length > 0)
        {
            throw new NotSupportedException(
                $"the language-model objective cannot pretrain a model with the pretrained encoder \"{model.Config.Encoder}\": its token vectors are computed from the whole sentence, so each already carries the neighbours a direction must predict");
        }

        EncodedSentence[] encoded = [.. sentences.Where(s => s.Count > 0).Select(s => model.Encode(s, null))];
        if (encoded.Length == 0)
        {
            throw new ArgumentException("the pretraining text has no non-empty sentence", nameof(sentences));
        }

        TorchRuntime.SetThreads(options.Threads);
        var rng = new Random(options.Seed);
        using var generator = new Generator(unchecked((ulong)options.Seed), model.Device);
        Linear output;
        lock (TorchRuntime.GlobalGeneratorLock)
        {
            torch.random.manual_seed(options.Seed);
            output = nn.Linear(model.Config.Hidden, model.Config.WordBuckets);
        }

        using (output)
        {
            output.to(model.Device);
            model.Network.Generator = generator;
            try
            {
                return Run(model, output, encoded, options, rng, progress, cancellationToken);
            }
            finally
            {
                model.Network.Generator = null;
                model.Network.eval();
            }
        }
    }

    /// <summary>
    /// The targets of a padded batch of <paramref name="width"/> positions per sentence, row-major [B, width]: the
    /// forward direction's at position i is the word bucket of token i + 1, the backward direction's at i that of
    /// token i − 1; <see cref="BatchTensors.IgnoreIndex"/> where there is no such token (a sentence's last / first
    /// position, and padding).
    /// </summary>
    internal static (long[] Forward, long[] Backward) Targets(IReadOnlyList<EncodedSentence> batch, int width)
    {
        var forward = new long[batch.Count * width];
        var backward = new long[batch.Count * width];
        Array.Fill(forward, BatchTensors.IgnoreIndex);
        Array.Fill(backward, BatchTensors.IgnoreIndex);
        for (int b = 0; b < batch.Count; b++)
        {
            long[] words = batch[b].Words;
            for (int i = 0; i < words.Length; i++)
            {
                if (i + 1 < words.Length)
                {
                    forward[(b * width) + i] = words[i + 1];
                }

                if (i > 0)
                {
                    backward[(b * width) + i] = words[i - 1];
                }
            }
        }

        return (forward, backward);
    }

    private static LanguageModelResult Run(
        TaggerModel model,
        Linear output,
        EncodedSentence[] encoded,
        LanguageModelOptions options,
        Random rng,
        IProgress<TrainProgress>? progress,
        CancellationToken cancellationToken)
    {
        // The encoder's parameters (embeddings and BiLSTM) and the throw-away output layer; the head and CRF get no gradient.
        Parameter[] encoder = [.. model.Parameters.Where(p => !p.Name.StartsWith("head.", StringComparison.Ordinal) && !p.Name.StartsWith("crf.", StringComparison.Ordinal)).Select(p => p.Tensor)];
        Parameter[] trained = [.. encoder, .. output.parameters()];
        using var optimizer = new ParameterOptimizer(trained, TaggerOptimizer.Adam, options.LearningRate);
        var total = Stopwatch.StartNew();
        var losses = new List<double>();
        long tokens = 0;
        long predictionsPerEpoch = 0;
        int steps = 0;
        int skipped = 0;
        model.Network.train();
        output.train();
        for (int epoch = 1; epoch <= options.Epochs; epoch++)
        {
            double lossSum = 0;
            long predictions = 0;
            int skippedInEpoch = 0;
            List<EncodedSentence[]> batches = TaggerTrainer.MakeBatches(encoded, options.BatchSize, rng);
            for (int b = 0; b < batches.Count; b++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                (double sum, long count, bool notFinite) = Step(model, output, optimizer, trained, batches[b], options, rng);
                tokens += batches[b].Sum(s => s.Length);
                if (notFinite)
                {
                    skippedInEpoch++;
                    continue;
                }

                lossSum += sum;
                predictions += count;
                steps++;
                if (progress is not null && steps % ReportEverySteps == 0)
                {
                    progress.Report(new TrainProgress(epoch, options.Epochs, steps, (b + 1) / (double)batches.Count,
                        lossSum / Math.Max(1, predictions), null, null, tokens / total.Elapsed.TotalSeconds, false));
                }
            }

            if (skippedInEpoch > 0 && predictions == 0)
            {
                // As the tagger's trainer: an epoch whose every step was skipped would report loss 0 (perplexity 1).
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"Pretraining diverged in epoch {epoch}: the loss or its gradient was not a finite number at every one of its {skippedInEpoch} steps, so no step was taken (learning rate {options.LearningRate:G4}; try a smaller one)."));
            }

            skipped += skippedInEpoch;
            predictionsPerEpoch = predictions;
            losses.Add(lossSum / Math.Max(1, predictions));
            progress?.Report(new TrainProgress(epoch, options.Epochs, steps, 1.0, losses[^1], null, null, tokens / total.Elapsed.TotalSeconds, true));
        }

        return new LanguageModelResult(losses, steps, predictionsPerEpoch, tokens / total.Elapsed.TotalSeconds, total.Elapsed) { SkippedSteps = skipped };
    }

    /// <summary>
    /// One Adam step on the summed cross-entropy of both directions divided by the batch's predictions; returns that sum
    /// and count, or Skipped when the loss or its gradient was not finite (no step taken).
    /// </summary>
    private static (double Sum, long Count, bool Skipped) Step(TaggerModel model, Linear output, ParameterOptimizer optimizer, Parameter[] trained, EncodedSentence[] batch, LanguageModelOptions options, Random rng)
    {
        using var scope = torch.NewDisposeScope();
        BatchTensors tensors = BatchTensors.Create(batch, model.Config, model.Device, withLabels: false, model.Config.WordDropout, rng);
        int width = (int)tensors.Words.shape[1];
        (long[] forwardTargets, long[] backwardTargets) = Targets(batch, width);
        long count = forwardTargets.Count(t => t != BatchTensors.IgnoreIndex) + backwardTargets.Count(t => t != BatchTensors.IgnoreIndex);
        if (count == 0)
        {
            return (0, 0, false); // one-token sentences only: nothing to predict
        }

        int hidden = model.Config.Hidden;
        Tensor states = model.Network.Dropout(model.Network.EncoderStates(tensors)); // [B, T, 2H]
        Tensor forward = output.call(states.narrow(2, 0, hidden)).reshape(-1, model.Config.WordBuckets);
        Tensor backward = output.call(states.narrow(2, hidden, hidden)).reshape(-1, model.Config.WordBuckets);
        Tensor forwardLoss = nn.functional.cross_entropy(forward, torch.tensor(forwardTargets).to(model.Device),
            ignore_index: BatchTensors.IgnoreIndex, reduction: nn.Reduction.Sum);
        Tensor backwardLoss = nn.functional.cross_entropy(backward, torch.tensor(backwardTargets).to(model.Device),
            ignore_index: BatchTensors.IgnoreIndex, reduction: nn.Reduction.Sum);
        Tensor summed = TorchScalars.Add(forwardLoss, backwardLoss);
        using Scalar predictions = count.ToScalar();
        Tensor loss = summed.div(predictions);
        optimizer.ZeroGrad();
        float value = summed.item<float>();
        if (!float.IsFinite(value))
        {
            return (0, 0, true); // skipped: a step along a gradient that is not a number would make every weight NaN
        }

        loss.backward();
        if (!GradientGuard.ClipAndCheck(trained, options.GradientClip))
        {
            optimizer.ZeroGrad();
            return (0, 0, true); // skipped, as above (a NaN gradient can sit behind a finite loss, clipped or not)
        }

        optimizer.Step();
        return (value, count, false);
    }
}
