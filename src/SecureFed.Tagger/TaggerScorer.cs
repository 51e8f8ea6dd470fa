using SecureFed.Tagger.Internal;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureFed.Tagger;

/// <summary>
/// How much a model believes a labelled sentence: log p(tags | tokens) under the model in eval mode (no dropout). With
/// the CRF head it is the gold path's score minus log Z (the IOB2 constraints included); with the softmax head it is
/// the sum of the tokens' log-softmax at the gold labels. Privacy auditing (membership inference, canary exposure) ranks
/// sentences by this number: a model that memorised a sentence gives it a higher log-likelihood than similar unseen ones.
/// </summary>
public static class TaggerScorer
{
    /// <summary>log p(tags | tokens) per sentence (always ≤ 0; 0 for an empty sentence).</summary>
    /// <param name="model">The tagger.</param>
    /// <param name="sentences">Labelled sentences; tags of types the model does not know count as O (as in training).</param>
    /// <param name="batchSize">Sentences per forward pass.</param>
    /// <returns>One natural-log likelihood per sentence, in input order.</returns>
    public static double[] LogLikelihoods(TaggerModel model, IReadOnlyList<Sentence> sentences, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        model.PrepareFeatures(sentences);
        var encoded = new EncodedSentence[sentences.Count];
        for (int i = 0; i < sentences.Count; i++)
        {
            Sentence s = sentences[i];
            if (s.Tokens.Count != s.Tags.Count)
            {
                throw new ArgumentException($"sentence {i}: {s.Tokens.Count} tokens but {s.Tags.Count} tags", nameof(sentences));
            }

            encoded[i] = model.Encode(s.Tokens, s.Tags);
        }

        var result = new double[sentences.Count];
        int[] order = [.. Enumerable.Range(0, encoded.Length).Where(i => encoded[i].Length > 0).OrderBy(i => encoded[i].Length)];
        TaggerNetwork network = model.Network;
        bool wasTraining = network.training;
        network.eval();
        try
        {
            using var noGrad = torch.no_grad();
            for (int start = 0; start < order.Length; start += batchSize)
            {
                int[] idx = order[start..Math.Min(order.Length, start + batchSize)];
                EncodedSentence[] batch = [.. idx.Select(i => encoded[i])];
                using var scope = torch.NewDisposeScope();
                var tensors = BatchTensors.Create(batch, model.Config, model.Device, withLabels: true, 0, null);
                Tensor scores = network.Forward(tensors);
                Tensor labels = tensors.Labels!;
                Tensor logLikelihood;
                if (network.Crf is LinearChainCrf crf)
                {
                    logLikelihood = crf.NegativeLogLikelihood(scores, labels, tensors.Mask).neg();
                }
                else
                {
                    Tensor logProbs = nn.functional.log_softmax(scores, -1);
                    Tensor gold = logProbs.gather(2, labels.clamp_min(TorchScalars.ZeroInt).unsqueeze(2)).squeeze(2);
                    logLikelihood = (gold * tensors.Mask.to(gold.dtype)).sum(1);
                }

                float[] values = logLikelihood.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
                for (int b = 0; b < idx.Length; b++)
                {
                    result[idx[b]] = values[b];
                }
            }
        }
        finally
        {
            network.train(wasTraining);
        }

        return result;
    }
}
