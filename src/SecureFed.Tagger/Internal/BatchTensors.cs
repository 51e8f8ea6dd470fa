using static TorchSharp.torch;

namespace SecureFed.Tagger.Internal;

/// <summary>Padded tensors of one batch; created inside a dispose scope.</summary>
internal sealed record BatchTensors(Tensor Words, Tensor Shapes, Tensor Ngrams, Tensor Lengths, Tensor? Labels, int TokenCount)
{
    public const long IgnoreIndex = -100;

    public static BatchTensors Create(IReadOnlyList<EncodedSentence> batch, int ngramsPerToken, Device device, bool withLabels, double wordDropout, Random? rng)
    {
        int b = batch.Count;
        int t = Math.Max(1, batch.Max(s => s.Length));
        var words = new long[b * t];
        var shapes = new long[b * t];
        var ngrams = new long[b * t * ngramsPerToken];
        var lengths = new long[b];
        long[]? labels = withLabels ? new long[b * t] : null;
        if (labels is not null)
        {
            Array.Fill(labels, IgnoreIndex);
        }

        int tokens = 0;
        for (int i = 0; i < b; i++)
        {
            EncodedSentence s = batch[i];
            lengths[i] = Math.Max(1, s.Length);
            tokens += s.Length;
            for (int j = 0; j < s.Length; j++)
            {
                words[(i * t) + j] = wordDropout > 0 && rng is not null && rng.NextDouble() < wordDropout ? 0 : s.Words[j];
            }

            Array.Copy(s.Shapes, 0, shapes, i * t, s.Length);
            Array.Copy(s.Ngrams, 0, ngrams, i * t * ngramsPerToken, s.Length * ngramsPerToken);
            if (labels is not null && s.Labels is not null)
            {
                Array.Copy(s.Labels, 0, labels, i * t, s.Length);
            }
        }

        return new BatchTensors(
            tensor(words, [b, t]).to(device),
            tensor(shapes, [b, t]).to(device),
            tensor(ngrams, [b, t, ngramsPerToken]).to(device),
            tensor(lengths),
            labels is null ? null : tensor(labels, [b, t]).to(device),
            tokens);
    }
}
