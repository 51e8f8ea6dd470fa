using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// Hashed word + shape + mean-pooled character n-gram embeddings, an optional character CNN, the optional frozen
/// pretrained encoder's token vectors (an input, not a module: <see cref="PretrainedEncoder"/>), a BiLSTM encoder, a
/// linear head and an optional linear-chain CRF. Sub-modules are registered explicitly in this order, which fixes
/// <c>named_parameters()</c> (= flatten) order: <c>word_emb</c>, <c>shape_emb</c>, <c>ngram_emb</c>,
/// [<c>char_emb</c>, <c>char_cnn</c>], <c>encoder</c>, <c>head</c>, [<c>crf</c>].
/// </summary>
internal sealed class TaggerNetwork : nn.Module
{
    private readonly Embedding _wordEmb;
    private readonly Embedding _shapeEmb;
    private readonly Embedding _ngramEmb;
    private readonly Embedding? _charEmb;
    private readonly Conv1d? _charCnn;
    private readonly LSTM _encoder;
    private readonly Linear _head;
    private readonly LinearChainCrf? _crf;
    private readonly Dropout _dropout;
    private readonly double _interLayerDropout;
    private readonly int _labelCount;

    public TaggerNetwork(TaggerConfig config, LabelSet labels)
        : base("SecureFedTagger")
    {
        _labelCount = labels.Count;
        _wordEmb = nn.Embedding(config.WordBuckets, config.WordDim, padding_idx: 0);
        _shapeEmb = nn.Embedding(config.ShapeBuckets, config.ShapeDim, padding_idx: 0);
        _ngramEmb = nn.Embedding(config.CharNgramBuckets, config.CharDim, padding_idx: 0);
        register_module("word_emb", _wordEmb);
        register_module("shape_emb", _shapeEmb);
        register_module("ngram_emb", _ngramEmb);
        if (config.CharCnnFilters > 0)
        {
            _charEmb = nn.Embedding(config.CharBuckets, config.CharEmbDim, padding_idx: 0);
            _charCnn = nn.Conv1d(config.CharEmbDim, config.CharCnnFilters, config.CharCnnWidth, padding: config.CharCnnWidth / 2);
            register_module("char_emb", _charEmb);
            register_module("char_cnn", _charCnn);
        }

        _encoder = nn.LSTM(config.InputDim, config.Hidden, numLayers: config.Layers, batchFirst: true,
            dropout: config.Layers > 1 ? config.Dropout : 0.0, bidirectional: true);
        _head = nn.Linear(2 * config.Hidden, labels.Count);
        register_module("encoder", _encoder);
        register_module("head", _head);
        if (config.Crf)
        {
            _crf = new LinearChainCrf(labels);
            register_module("crf", _crf);
        }

        _interLayerDropout = config.Layers > 1 ? config.Dropout : 0.0;
        _dropout = nn.Dropout(config.Dropout);
        register_module("dropout", _dropout);
    }

    /// <summary>
    /// The generator dropout draws its masks from while a training call runs (<see cref="TaggerTrainer"/> sets it and
    /// clears it after), so concurrent training calls in one process neither share nor disturb torch's global
    /// generator. Null: torch's global generator. The multi-layer <c>nn.LSTM</c> of <see cref="Forward"/> still draws
    /// its own between-layer dropout from the global generator (DP-SGD's batched clipping runs the layers itself and
    /// uses this one).
    /// </summary>
    public Generator? Generator { get; set; }

    /// <summary>The dropout applied to the encoder's input and output (active in training mode).</summary>
    public Tensor Dropout(Tensor x) => Generator is null ? _dropout.call(x) : DropoutWith(x, _dropout.p, Generator);

    /// <summary>The dropout the LSTM applies between its layers (active in training mode).</summary>
    public Tensor InterLayerDropout(Tensor x) =>
        Generator is null ? nn.functional.dropout(x, _interLayerDropout, training) : DropoutWith(x, _interLayerDropout, Generator);

    /// <summary>Inverted dropout with masks from <paramref name="generator"/>: zeroes each element with probability p and scales the rest by 1 / (1 − p).</summary>
    private Tensor DropoutWith(Tensor x, double p, Generator generator)
    {
        if (!training || p <= 0)
        {
            return x.alias();
        }

        using Tensor keep = torch.empty_like(x).bernoulli_(1 - p, generator);
        using Scalar scale = (1 / (1 - p)).ToScalar();
        using Tensor kept = x.mul(keep);
        return kept.mul(scale);
    }

    /// <summary>The CRF layer, or null for the softmax head.</summary>
    public LinearChainCrf? Crf => _crf;

    /// <summary>Label scores [B, T, labels] (logits of the softmax head, or CRF emissions).</summary>
    public Tensor Forward(BatchTensors batch)
    {
        using Tensor states = EncoderStates(batch);
        using Tensor yd = Dropout(states);
        return _head.call(yd);
    }

    /// <summary>The encoder's output [B, T, 2 * Hidden] before the output dropout: the forward direction's state in the first Hidden columns, the backward direction's in the last (zero past each sentence's length).</summary>
    public Tensor EncoderStates(BatchTensors batch)
    {
        long maxLen = batch.Words.shape[1];
        using Tensor w = _wordEmb.call(batch.Words);
        using Tensor s = _shapeEmb.call(batch.Shapes);
        using Tensor g = _ngramEmb.call(batch.Ngrams);
        using Tensor mask = batch.Ngrams.ne(TorchScalars.ZeroInt).unsqueeze(-1).to(g.dtype);
        using Tensor gsum = (g * mask).sum(2);
        using Tensor gcount = mask.sum(2).clamp_min(TorchScalars.One);
        using Tensor gmean = gsum / gcount;
        var parts = new List<Tensor> { w, s, gmean };
        Tensor? chars = null;
        if (_charEmb is not null && _charCnn is not null && batch.Chars is Tensor charIds)
        {
            chars = CharFeatures(charIds);
            parts.Add(chars);
        }

        if (batch.Features is Tensor features)
        {
            parts.Add(features);
        }

        using Tensor x = torch.cat(parts, -1);
        chars?.Dispose();
        using Tensor xd = Dropout(x);
        using var packed = nn.utils.rnn.pack_padded_sequence(xd, batch.Lengths, batch_first: true, enforce_sorted: false);
        (var output, Tensor h, Tensor c) = _encoder.call(packed);
        h.Dispose();
        c.Dispose();
        (Tensor padded, Tensor outLengths) = nn.utils.rnn.pad_packed_sequence(output, batch_first: true, total_length: maxLen);
        output.Dispose();
        outLengths.Dispose();
        return padded;
    }

    /// <summary>Summed loss over the batch's sentences: CRF negative log-likelihood, or token cross-entropy.</summary>
    public Tensor SummedLoss(Tensor scores, BatchTensors batch)
    {
        Tensor labels = batch.Labels ?? throw new InvalidOperationException("the batch has no labels");
        if (_crf is not null)
        {
            return _crf.SummedNegativeLogLikelihood(scores, batch.LabelValues!, batch.LengthValues);
        }

        if (batch.OutsideAllowed is null)
        {
            return nn.functional.cross_entropy(scores.reshape(-1, _labelCount), labels.reshape(-1),
                ignore_index: BatchTensors.IgnoreIndex, reduction: nn.Reduction.Sum);
        }

        return PartialLabelLoss(scores, labels, batch.OutsideAllowed);
    }

    /// <summary>
    /// −Σ log Σ_{y ∈ A(token)} p(y): A is the gold label, except for O tokens of partially annotated sentences, where it
    /// is O plus every label of a type the sentence's annotators did not mark. Equals the cross-entropy when A is one label.
    /// </summary>
    private Tensor PartialLabelLoss(Tensor scores, Tensor labels, Tensor outsideAllowed)
    {
        using var scope = torch.NewDisposeScope();
        Tensor logp = nn.functional.log_softmax(scores, -1); // [B, T, L]
        using Scalar ignore = BatchTensors.IgnoreIndex.ToScalar();
        Tensor valid = labels.ne(ignore); // [B, T]
        Tensor safe = labels.masked_fill(valid.logical_not(), TorchScalars.ZeroInt);
        Tensor gold = nn.functional.one_hot(safe, _labelCount).to(ScalarType.Bool); // [B, T, L]
        Tensor isOutside = safe.eq(TorchScalars.ZeroInt).unsqueeze(-1); // [B, T, 1]
        Tensor allowed = torch.where(isOutside, outsideAllowed.unsqueeze(1).expand_as(gold), gold);
        using Scalar negativeInfinity = float.NegativeInfinity.ToScalar();
        Tensor perToken = logp.masked_fill(allowed.logical_not(), negativeInfinity).logsumexp(-1).neg(); // [B, T]
        return perToken.masked_fill(valid.logical_not(), TorchScalars.ZeroInt).sum().MoveToOuterDisposeScope();
    }

    /// <summary>Character CNN: [B, T, C] hashed character ids to [B, T, filters], ReLU then max over the token's characters.</summary>
    private Tensor CharFeatures(Tensor charIds)
    {
        long b = charIds.shape[0];
        long t = charIds.shape[1];
        long c = charIds.shape[2];
        using var scope = torch.NewDisposeScope();
        Tensor e = Dropout(_charEmb!.call(charIds.reshape(b * t, c))); // [N, C, E]
        Tensor conv = nn.functional.relu(_charCnn!.call(e.transpose(1, 2))); // [N, F, C]
        Tensor pad = charIds.reshape(b * t, 1, c).eq(TorchScalars.ZeroInt);
        Tensor pooled = conv.masked_fill(pad, TorchScalars.ZeroInt).amax([2]); // [N, F]
        return pooled.reshape(b, t, -1).MoveToOuterDisposeScope();
    }
}
