using static TorchSharp.torch;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// Padded tensors of one batch; created inside a dispose scope. <see cref="Chars"/> is null without the character
/// CNN; <see cref="Mask"/> is [B, T] bool (true on real tokens). <see cref="LengthValues"/> and
/// <see cref="LabelValues"/> ([B * T], padding = <see cref="IgnoreIndex"/>) are the same data as CPU arrays.
/// </summary>
internal sealed record BatchTensors(Tensor Words, Tensor Shapes, Tensor Ngrams, Tensor? Chars, Tensor Lengths, Tensor Mask, Tensor? Labels, int TokenCount)
{
    public long[] LengthValues { get; init; } = [];

    public long[]? LabelValues { get; init; }

    /// <summary>[B, L] bool: the labels an O token of each sentence may carry (partial annotation); null when every sentence is fully annotated.</summary>
    public Tensor? OutsideAllowed { get; init; }

    /// <summary>[B, T, EncoderDim] float: the pretrained encoder's token vectors (zero on padding); null without an encoder.</summary>
    public Tensor? Features { get; init; }

    public const long IgnoreIndex = -100;

    public static BatchTensors Create(IReadOnlyList<EncodedSentence> batch, TaggerConfig config, Device device, bool withLabels, double wordDropout, Random? rng)
    {
        int ngramsPerToken = config.MaxNgramsPerToken;
        int charsPerToken = config.CharCnnFilters > 0 ? config.MaxCharsPerToken : 0;
        int b = batch.Count;
        int t = Math.Max(1, batch.Max(s => s.Length));
        var words = new long[b * t];
        var shapes = new long[b * t];
        var ngrams = new long[b * t * ngramsPerToken];
        var chars = new long[b * t * charsPerToken];
        var lengths = new long[b];
        var mask = new bool[b * t];
        long[]? labels = withLabels ? new long[b * t] : null;
        if (labels is not null)
        {
            Array.Fill(labels, IgnoreIndex);
        }

        int featureDim = config.EncoderDim;
        float[]? features = featureDim > 0 ? new float[b * t * featureDim] : null;
        int tokens = 0;
        for (int i = 0; i < b; i++)
        {
            EncodedSentence s = batch[i];
            lengths[i] = Math.Max(1, s.Length);
            tokens += s.Length;
            for (int j = 0; j < s.Length; j++)
            {
                words[(i * t) + j] = wordDropout > 0 && rng is not null && rng.NextDouble() < wordDropout ? 0 : s.Words[j];
                mask[(i * t) + j] = true;
            }

            mask[i * t] = true; // an empty sentence still has one (padding) position, as in Lengths
            Array.Copy(s.Shapes, 0, shapes, i * t, s.Length);
            Array.Copy(s.Ngrams, 0, ngrams, i * t * ngramsPerToken, s.Length * ngramsPerToken);
            if (charsPerToken > 0)
            {
                Array.Copy(s.Chars, 0, chars, i * t * charsPerToken, s.Length * charsPerToken);
            }

            if (labels is not null && s.Labels is not null)
            {
                Array.Copy(s.Labels, 0, labels, i * t, s.Length);
            }

            if (features is not null)
            {
                float[] f = s.Features ?? throw new InvalidOperationException("the sentence was encoded without the pretrained encoder's features");
                Array.Copy(f, 0, features, i * t * featureDim, s.Length * featureDim);
            }
        }

        Tensor? outsideAllowed = null;
        if (labels is not null && batch.FirstOrDefault(s => s.OutsideAllowed is not null)?.OutsideAllowed is bool[] shape)
        {
            var allowed = new bool[b * shape.Length];
            for (int i = 0; i < b; i++)
            {
                if (batch[i].OutsideAllowed is bool[] row)
                {
                    Array.Copy(row, 0, allowed, i * shape.Length, shape.Length);
                }
                else
                {
                    allowed[i * shape.Length] = true;
                }
            }

            outsideAllowed = tensor(allowed, [b, shape.Length]).to(device);
        }

        return new BatchTensors(
            tensor(words, [b, t]).to(device),
            tensor(shapes, [b, t]).to(device),
            tensor(ngrams, [b, t, ngramsPerToken]).to(device),
            charsPerToken > 0 ? tensor(chars, [b, t, charsPerToken]).to(device) : null,
            tensor(lengths),
            tensor(mask, [b, t]).to(device),
            labels is null ? null : tensor(labels, [b, t]).to(device),
            tokens)
        {
            LengthValues = lengths,
            LabelValues = labels,
            OutsideAllowed = outsideAllowed,
            Features = features is null ? null : tensor(features, [b, t, featureDim]).to(device),
        };
    }
}
