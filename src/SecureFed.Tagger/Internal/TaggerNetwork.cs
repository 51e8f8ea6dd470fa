using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// Hashed word + shape + mean-pooled character n-gram embeddings, BiLSTM encoder, linear head.
/// Fields are registered in declaration order, which fixes <c>named_parameters()</c> order.
/// </summary>
internal sealed class TaggerNetwork : nn.Module
{
#pragma warning disable IDE0044, CA2213 // registered sub-modules; disposed by the base Module
    private readonly Embedding word_emb;
    private readonly Embedding shape_emb;
    private readonly Embedding ngram_emb;
    private readonly LSTM encoder;
    private readonly Linear head;
    private readonly Dropout dropout;
#pragma warning restore IDE0044, CA2213

    public TaggerNetwork(TaggerConfig config, int labelCount)
        : base("SecureFedTagger")
    {
        word_emb = nn.Embedding(config.WordBuckets, config.WordDim, padding_idx: 0);
        shape_emb = nn.Embedding(config.ShapeBuckets, config.ShapeDim, padding_idx: 0);
        ngram_emb = nn.Embedding(config.CharNgramBuckets, config.CharDim, padding_idx: 0);
        encoder = nn.LSTM(config.InputDim, config.Hidden, numLayers: config.Layers, batchFirst: true,
            dropout: config.Layers > 1 ? config.Dropout : 0.0, bidirectional: true);
        head = nn.Linear(2 * config.Hidden, labelCount);
        dropout = nn.Dropout(config.Dropout);
        RegisterComponents();
    }

    /// <summary>Logits [B, T, labels].</summary>
    /// <param name="words">[B, T] word bucket ids (0 = padding).</param>
    /// <param name="shapes">[B, T] shape ids.</param>
    /// <param name="ngrams">[B, T, K] n-gram ids (0 = padding).</param>
    /// <param name="lengths">[B] int64 lengths on the CPU.</param>
    public Tensor Forward(Tensor words, Tensor shapes, Tensor ngrams, Tensor lengths)
    {
        long maxLen = words.shape[1];
        using Tensor w = word_emb.call(words);
        using Tensor s = shape_emb.call(shapes);
        using Tensor g = ngram_emb.call(ngrams);
        using Tensor mask = ngrams.ne(0).unsqueeze(-1).to(g.dtype);
        using Tensor gsum = (g * mask).sum(2);
        using Tensor gcount = mask.sum(2).clamp_min(1.0);
        using Tensor gmean = gsum / gcount;
        using Tensor x = torch.cat([w, s, gmean], -1);
        using Tensor xd = dropout.call(x);
        using var packed = nn.utils.rnn.pack_padded_sequence(xd, lengths, batch_first: true, enforce_sorted: false);
        (var output, Tensor h, Tensor c) = encoder.call(packed);
        h.Dispose();
        c.Dispose();
        (Tensor padded, Tensor outLengths) = nn.utils.rnn.pad_packed_sequence(output, batch_first: true, total_length: maxLen);
        output.Dispose();
        outLengths.Dispose();
        using Tensor yd = dropout.call(padded);
        padded.Dispose();
        return head.call(yd);
    }
}
