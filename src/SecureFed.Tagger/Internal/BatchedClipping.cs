using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// DP-SGD's clipped gradient sum, Σᵢ min(1, C / ‖gᵢ‖) gᵢ, from ONE forward and ONE backward pass over the whole batch
/// instead of one backward pass per example ("book-keeping", Bu et al., ICML 2023; per-sample gradients of linear
/// layers as in Opacus, and its DPLSTM idea of an LSTM built from linear maps).
/// </summary>
/// <remarks>
/// <para>Every parameter of the tagger enters through a linear map whose per-example gradient is a sum over the
/// example's time steps of (gradient at the map's output) ⊗ (the map's input):</para>
/// <list type="bullet">
/// <item>embeddings: the rows a sentence looks up get the gradient at the looked-up vectors (word, shape; n-grams
/// divided by the token's n-gram count, as they are mean-pooled); rows looked up twice add up, padding row 0 gets
/// nothing (<c>padding_idx</c>);</item>
/// <item>each LSTM layer and direction: gates_t = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh, so with δ_t = ∂L/∂gates_t,
/// ∂L/∂W_ih = Σ_t δ_t x_tᵀ, ∂L/∂W_hh = Σ_t δ_t h_{t−1}ᵀ, ∂L/∂b_ih = ∂L/∂b_hh = Σ_t δ_t;</item>
/// <item>the head: emissions = W y + b likewise; the CRF scores: per-sentence expected minus gold counts
/// (<see cref="LinearChainCrf.Gradients"/>).</item>
/// </list>
/// <para>The LSTM is therefore run step by step in torch ops (the same equations and gate order i, f, g, o as
/// libtorch's; few ops per step: one bmm, one sigmoid over all four gates, one addcmul, each for both directions of
/// the layer at once, [2, B, …]), with a zero "probe" tensor added to each layer's gate pre-activations; the probe's
/// gradient after one backward pass is δ for every example and step. The parameters themselves are detached, so
/// autograd computes only what is needed. Sequences of different lengths: the reverse direction runs on each sentence
/// reversed within its own length, so padding always comes after the real tokens and receives a zero gradient.
/// (Getting δ from ONE libtorch <c>nn.LSTM</c> call instead, fed the pre-activations with weight_ih = I so that its
/// input gradient is δ, was measured slower for the default model: the 4H × 4H identity products cost more than the
/// per-step calls they save; docs/tagger.md.)</para>
/// <para>Each group of maps that share a probe (an LSTM direction's W_ih and W_hh; the head) gets its per-example norms
/// either as ghost norms, ‖Σ_t δ_t x_tᵀ‖² = Σ_{t,s} (δ_t·δ_s)(x_t·x_s) from Gram matrices in float64 (per run of
/// similar-length sentences, <see cref="TokenLayout"/>), with the clipped sum as one [out, N] × [N, in] product over
/// the N real tokens, or from the materialised per-example gradients [B, out, in], whichever costs fewer multiply-adds
/// (<see cref="UsesGhostNorms"/>); a preconditioner (<c>scale</c>) and <see cref="PerExampleGradients"/> need them
/// materialised. The embeddings' are aggregated over (sentence, row) pairs with <c>unique</c>, never as dense
/// [B, rows, dim] tensors. The result equals the per-example reference (<see cref="TaggerTrainer.PerExampleGradient"/>
/// + clipping) to float rounding; the character CNN is not covered (the trainer then uses the reference loop).</para>
/// </remarks>
internal static class BatchedClipping
{
    /// <summary>Whether <paramref name="config"/> is covered (everything but the character CNN).</summary>
    public static bool Supports(TaggerConfig config) => config.CharCnnFilters == 0;

    /// <summary>
    /// Σᵢ min(1, <paramref name="maxNorm"/> / (‖gᵢ‖ + 1e-12)) gᵢ over the batch's sentences, one tensor per parameter in
    /// <see cref="TaggerModel.Parameters"/> order (created in the caller's dispose scope).
    /// </summary>
    /// <param name="model">The model (in training mode: dropout applies).</param>
    /// <param name="batch">The batch, with labels.</param>
    /// <param name="maxNorm">The clipping norm C.</param>
    /// <param name="trains">Which parameters are trained: the others get zeros and are left out of the norms.</param>
    /// <param name="lossSum">The summed loss of the batch's sentences.</param>
    /// <param name="norms">Each sentence's gradient norm (over the trained parameters) before clipping ([B], double).</param>
    /// <param name="scale">
    /// Optional fixed diagonal preconditioner by parameter name (same shape as the parameter): every per-example
    /// gradient is multiplied by it before its norm is taken, so the result is Σᵢ min(1, C / ‖A gᵢ‖) A gᵢ.
    /// </param>
    /// <param name="ghostNorms">
    /// Whether the LSTM's and the head's per-example norms and clipped sums are taken without materialising each
    /// example's [out, in] gradient: null chooses by cost for each group of maps that share a probe
    /// (<see cref="UsesGhostNorms"/>), false materialises them all, true takes ghost norms wherever there is no
    /// <paramref name="scale"/> (which needs them materialised). The result is the same to float rounding.
    /// </param>
    public static Tensor[] ClippedSum(TaggerModel model, BatchTensors batch, double maxNorm, Func<string, bool> trains, out double lossSum, out Tensor norms, IReadOnlyDictionary<string, Tensor>? scale = null, bool? ghostNorms = null)
    {
        TaggerConfig config = model.Config;
        if (!Supports(config))
        {
            throw new NotSupportedException("batched per-example clipping does not cover the character CNN");
        }

        Parts parts = Backward(model, batch, trains, scale, out lossSum);
        var p = parts.Parameters;
        long b = parts.Batch;
        var ghost = scale is null && ghostNorms != false
            ? parts.Maps.GroupBy(m => m.Probe, ReferenceEqualityComparer.Instance).Select(g => new GhostGroup([.. g])).Where(g => ghostNorms == true || UsesGhostNorms(g.Maps)).ToList()
            : [];
        var ghostMaps = new HashSet<Contribution>(ghost.SelectMany(g => g.Maps), ReferenceEqualityComparer.Instance);
        var dense = parts.Maps.Where(m => !ghostMaps.Contains(m)).Select(m => m.PerExample().Scaled(scale)).ToList();
        var tables = parts.Tables;
        Tensor[]? crfPerExample = parts.Crf;
        Tensor squared = torch.zeros(b, ScalarType.Float64, device: parts.Device);
        TokenLayout? layout = ghost.Count > 0 ? TokenLayout.Create(batch.LengthValues, batch.Words.shape[1], parts.Device) : null;
        foreach (GhostGroup g in ghost)
        {
            squared.add_(g.SquaredNorms(layout!), TorchScalars.OneInt);
        }

        foreach (DensePerExample d in dense)
        {
            squared.add_(d.SquaredNorms(), TorchScalars.OneInt);
        }

        foreach (EmbeddingPart e in tables)
        {
            squared.add_(e.SquaredNorms(b), TorchScalars.OneInt);
        }

        if (crfPerExample is not null)
        {
            foreach (Tensor g in crfPerExample)
            {
                using Tensor g64 = g.to(ScalarType.Float64);
                squared.add_(g64.mul(g64).flatten(1).sum(1), TorchScalars.OneInt);
            }
        }

        norms = squared.sqrt();
        using Scalar c = maxNorm.ToScalar();
        using Scalar tiny = 1e-12.ToScalar();
        Tensor factors = norms.add(tiny, TorchScalars.OneInt).reciprocal().mul(c).clamp_max(TorchScalars.One).to(ScalarType.Float32);

        var sums = new Dictionary<string, Tensor>();
        foreach (GhostGroup g in ghost)
        {
            g.AddClipped(factors, layout!, sums);
        }

        foreach (DensePerExample d in dense)
        {
            d.AddClipped(factors, sums);
        }

        foreach (EmbeddingPart e in tables)
        {
            sums[e.Name] = e.ClippedSum(factors, p[e.Name]);
        }

        if (crfPerExample is not null)
        {
            string[] names = ["crf.transitions", "crf.start", "crf.end"];
            for (int i = 0; i < names.Length; i++)
            {
                Tensor f = factors.reshape([b, .. Enumerable.Repeat(1L, (int)crfPerExample[i].dim() - 1)]);
                sums[names[i]] = crfPerExample[i].mul(f).sum(dim: 0);
            }
        }

        return [.. model.Parameters.Select(x => sums.TryGetValue(x.Name, out Tensor? s) ? s : torch.zeros_like(x.Tensor))];
    }

    /// <summary>
    /// Every example's gradient as a dense [B, P] matrix (P = the model's parameter count, in <see cref="TaggerModel.Parameters"/>
    /// order, zeros for the parameters <paramref name="trains"/> rejects), each scaled by <paramref name="scale"/> when
    /// given: from the same one forward and one backward pass as <see cref="ClippedSum"/>. B × P floats: meant for the
    /// tiny model (projected DP-SGD).
    /// </summary>
    public static Tensor PerExampleGradients(TaggerModel model, BatchTensors batch, Func<string, bool> trains, out double lossSum, IReadOnlyDictionary<string, Tensor>? scale = null)
    {
        if (!Supports(model.Config))
        {
            throw new NotSupportedException("batched per-example gradients do not cover the character CNN");
        }

        Parts parts = Backward(model, batch, trains, scale, out lossSum);
        long b = parts.Batch;
        var pieces = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DensePerExample d in parts.Maps.Select(m => m.PerExample().Scaled(scale)))
        {
            pieces[d.WeightName] = d.Weight.reshape(b, -1);
            pieces[d.BiasName] = pieces.TryGetValue(d.BiasName, out Tensor? bias0) ? TorchScalars.Add(bias0, d.Bias) : d.Bias;
        }

        foreach (EmbeddingPart e in parts.Tables)
        {
            pieces[e.Name] = e.PerExample(b);
        }

        if (parts.Crf is not null)
        {
            string[] names = ["crf.transitions", "crf.start", "crf.end"];
            for (int i = 0; i < names.Length; i++)
            {
                pieces[names[i]] = parts.Crf[i].reshape(b, -1);
            }
        }

        return torch.cat([.. model.Parameters.Select(x => pieces.TryGetValue(x.Name, out Tensor? g) ? g : torch.zeros(b, x.Tensor.numel(), device: parts.Device))], 1);
    }

    /// <summary>
    /// Whether the linear maps that share one probe (an LSTM direction's W_ih and W_hh, or the head) get ghost norms:
    /// when they cost fewer multiply-adds than the materialised per-example gradients, T² (out + Σ in) against
    /// T out Σ in per example (Bu et al.'s layer-wise choice), i.e. when T (out + Σ in) &lt; out Σ in. The default
    /// model's LSTM directions (out = 384, Σ in = 224 or 288) take them up to 141 or 164 steps, the tiny model's
    /// (96, 60) up to 36; the head (out = the label count) only for batches shorter than the label count.
    /// </summary>
    private static bool UsesGhostNorms(IReadOnlyList<Contribution> maps)
    {
        long t = maps[0].Probe.shape[1];
        long output = maps[0].Probe.shape[2];
        long inputs = maps.Sum(m => m.Input.shape[2]);
        return t * (output + inputs) < output * inputs;
    }

    /// <summary>The one forward and one backward pass, and each example's gradient in parts.</summary>
    private static Parts Backward(TaggerModel model, BatchTensors batch, Func<string, bool> trains, IReadOnlyDictionary<string, Tensor>? scale, out double lossSum)
    {
        TaggerConfig config = model.Config;
        var p = model.Parameters.ToDictionary(x => x.Name, x => x.Tensor);
        long b = batch.Words.shape[0];
        long t = batch.Words.shape[1];
        var contributions = new List<Contribution>();

        // 1. Embeddings (no autograd into the tables): the concatenated input is a leaf whose gradient is per token.
        Tensor input = EmbedInput(p, batch, out Tensor ngramCount);
        Tensor x = model.Network.Dropout(input);

        // 2. The BiLSTM, step by step (both directions together), with a probe on every layer's gates.
        Tensor reverse = ReverseIndex(batch.LengthValues, t, input.device);
        for (int layer = 0; layer < config.Layers; layer++)
        {
            x = Layer(p, config, x, layer, reverse, contributions);
            if (layer < config.Layers - 1)
            {
                x = model.Network.InterLayerDropout(x);
            }
        }

        // 3. The head, with a probe on the emissions.
        Tensor y = model.Network.Dropout(x);
        Tensor headWeight = p["head.weight"].detach();
        Tensor headProbe = torch.zeros(b, t, headWeight.shape[0], device: y.device).requires_grad_(true);
        Tensor emissions = TorchScalars.Add(torch.nn.functional.linear(y, headWeight, p["head.bias"].detach()), headProbe);
        contributions.Add(new Contribution("head.weight", headProbe, y.detach(), "head.bias"));

        // 4. The loss and one backward pass.
        CrfGradients? crf = null;
        Tensor loss;
        if (model.Network.Crf is LinearChainCrf crfLayer)
        {
            crf = crfLayer.Gradients(emissions, batch.LabelValues!, batch.LengthValues, perSentence: true);
            loss = (emissions * torch.tensor(crf.Emissions, emissions.shape).to(emissions.device)).sum();
            lossSum = crf.NegativeLogLikelihood;
        }
        else
        {
            loss = model.Network.SummedLoss(emissions, batch);
            lossSum = loss.item<float>();
        }

        loss.backward();

        // 5. The per-example parts.
        Tensor inputGrad = input.grad ?? torch.zeros_like(input);
        var maps = contributions.Where(c => trains(c.WeightName)).ToList();
        var tables = EmbeddingParts(config, batch, inputGrad, ngramCount, trains).Select(e => e.Scaled(scale)).ToList();
        Tensor[]? crfPerExample = crf is null || !trains("crf.transitions") ? null : CrfPerExample(crf, b, model.Labels.Count, y.device, scale);
        return new Parts(p, b, y.device, maps, tables, crfPerExample);
    }

    /// <summary>
    /// Each example's gradient: the trained dense maps' (as gradient at the output and input, unscaled), the embedding
    /// tables' lookups and the CRF's ([B, …] each, scaled; null without a trained CRF).
    /// </summary>
    private sealed record Parts(Dictionary<string, Parameter> Parameters, long Batch, Device Device, List<Contribution> Maps, List<EmbeddingPart> Tables, Tensor[]? Crf);

    /// <summary>[word | shape | mean n-gram | pretrained encoder's vectors] as a leaf tensor that requires grad; <paramref name="ngramCount"/> is [B, T, 1].</summary>
    private static Tensor EmbedInput(Dictionary<string, Parameter> p, BatchTensors batch, out Tensor ngramCount)
    {
        using (torch.no_grad())
        {
            Tensor w = Lookup(p["word_emb.weight"], batch.Words);
            Tensor s = Lookup(p["shape_emb.weight"], batch.Shapes);
            Tensor g = Lookup(p["ngram_emb.weight"], batch.Ngrams);
            Tensor mask = batch.Ngrams.ne(TorchScalars.ZeroInt).unsqueeze(-1).to(g.dtype);
            ngramCount = mask.sum(2).clamp_min(TorchScalars.One);
            Tensor gmean = (g * mask).sum(2) / ngramCount;
            Tensor[] parts = batch.Features is Tensor features ? [w, s, gmean, features] : [w, s, gmean]; // the encoder's vectors last, as in TaggerNetwork
            return torch.cat(parts, -1).detach().requires_grad_(true);
        }
    }

    /// <summary>The rows <paramref name="ids"/> names, shaped [ids…, dim] (what <c>nn.Embedding</c>'s forward returns).</summary>
    private static Tensor Lookup(Tensor table, Tensor ids) =>
        table.index_select(0, ids.reshape(-1)).reshape([.. ids.shape, table.shape[1]]);

    /// <summary>
    /// One LSTM layer over [B, T, in], its two directions stepped together (each step's ops act on [2, B, …], one call
    /// for both directions); returns [B, T, 2H]: the forward direction's states, then the reverse direction's, in the
    /// original time order.
    /// </summary>
    private static Tensor Layer(Dictionary<string, Parameter> p, TaggerConfig config, Tensor x, int layer, Tensor reverse, List<Contribution> contributions)
    {
        long b = x.shape[0];
        long t = x.shape[1];
        int h = config.Hidden;
        string[] suffixes = [$"_l{layer}", $"_l{layer}_reverse"];
        Tensor[] inputs = [x, x.gather(1, reverse.unsqueeze(-1).expand(b, t, x.shape[2]))];
        var probes = new Tensor[2];
        var gatesIn = new Tensor[2];
        var recurrent = new Tensor[2];
        for (int d = 0; d < 2; d++)
        {
            Tensor wih = p["encoder.weight_ih" + suffixes[d]].detach();
            Tensor bias = TorchScalars.Add(p["encoder.bias_ih" + suffixes[d]].detach(), p["encoder.bias_hh" + suffixes[d]].detach());
            probes[d] = torch.zeros(b, t, 4L * h, device: x.device).requires_grad_(true);
            gatesIn[d] = TorchScalars.Add(torch.nn.functional.linear(inputs[d], wih, bias), probes[d]); // [B, T, 4H]
            recurrent[d] = p["encoder.weight_hh" + suffixes[d]].detach().t(); // [H, 4H]
        }

        // unbind, not select per step: select's backward writes a full [2, B, T, 4H] gradient per step (quadratic in T).
        Tensor[] steps = torch.stack(gatesIn, 0).unbind(2); // T × [2, B, 4H]
        Tensor whhT = torch.stack(recurrent, 0); // [2, H, 4H]
        Tensor state = torch.zeros(2, b, h, device: x.device);
        Tensor cell = torch.zeros(2, b, h, device: x.device);
        var outputs = new Tensor[t];
        for (long step = 0; step < t; step++)
        {
            // Few ops per step, as each costs a call into libtorch and an autograd node: the sigmoid of all four
            // gates at once (the g block's is unused), g = tanh of its block, c = f c + i g by addcmul. (Not baddbmm:
            // TorchSharp 0.107 hands its three tensors to libtorch in the wrong order.)
            Tensor gates = TorchScalars.Add(steps[step], state.bmm(whhT));
            Tensor[] sigmoids = gates.sigmoid().chunk(4, 2);
            Tensor g = gates.narrow(2, 2L * h, h).tanh();
            cell = torch.addcmul(sigmoids[1] * cell, sigmoids[0], g, TorchScalars.One);
            state = sigmoids[3] * cell.tanh();
            outputs[step] = state;
        }

        Tensor[] hs = torch.stack(outputs, 2).unbind(0); // 2 × [B, T, H]
        for (int d = 0; d < 2; d++)
        {
            Tensor previous = torch.cat([torch.zeros(b, 1, h, device: x.device), hs[d].narrow(1, 0, t - 1)], 1).detach();
            contributions.Add(new Contribution("encoder.weight_ih" + suffixes[d], probes[d], inputs[d].detach(), "encoder.bias_ih" + suffixes[d]));
            contributions.Add(new Contribution("encoder.weight_hh" + suffixes[d], probes[d], previous, "encoder.bias_hh" + suffixes[d]));
        }

        return torch.cat([hs[0], hs[1].gather(1, reverse.unsqueeze(-1).expand(b, t, h))], -1);
    }

    /// <summary>[B, T] indices that reverse each sentence within its length and leave padding in place (an involution).</summary>
    private static Tensor ReverseIndex(long[] lengths, long t, Device device)
    {
        var index = new long[lengths.Length * t];
        for (int s = 0; s < lengths.Length; s++)
        {
            long len = Math.Clamp(lengths[s], 1, t);
            for (long j = 0; j < t; j++)
            {
                index[(s * t) + j] = j < len ? len - 1 - j : j;
            }
        }

        return torch.tensor(index, [lengths.Length, t]).to(device);
    }

    private static List<EmbeddingPart> EmbeddingParts(TaggerConfig config, BatchTensors batch, Tensor inputGrad, Tensor ngramCount, Func<string, bool> trains)
    {
        long b = batch.Words.shape[0];
        long t = batch.Words.shape[1];
        Tensor dw = inputGrad.narrow(2, 0, config.WordDim);
        Tensor ds = inputGrad.narrow(2, config.WordDim, config.ShapeDim);
        Tensor dg = inputGrad.narrow(2, config.WordDim + config.ShapeDim, config.CharDim) / ngramCount; // [B, T, D]
        int k = config.MaxNgramsPerToken;
        Tensor dgPerNgram = dg.unsqueeze(2).expand(b, t, k, config.CharDim);
        var parts = new List<EmbeddingPart>(3);
        if (trains("word_emb.weight"))
        {
            parts.Add(EmbeddingPart.Create("word_emb.weight", batch.Words, dw, config.WordBuckets));
        }

        if (trains("shape_emb.weight"))
        {
            parts.Add(EmbeddingPart.Create("shape_emb.weight", batch.Shapes, ds, config.ShapeBuckets));
        }

        if (trains("ngram_emb.weight"))
        {
            parts.Add(EmbeddingPart.Create("ngram_emb.weight", batch.Ngrams, dgPerNgram, config.CharNgramBuckets));
        }

        return parts;
    }

    private static Tensor[] CrfPerExample(CrfGradients crf, long b, int labels, Device device, IReadOnlyDictionary<string, Tensor>? scale)
    {
        Tensor[] perExample =
        [
            torch.tensor(crf.Transitions, [b, labels, labels]).to(ScalarType.Float32).to(device),
            torch.tensor(crf.Start, [b, labels]).to(ScalarType.Float32).to(device),
            torch.tensor(crf.End, [b, labels]).to(ScalarType.Float32).to(device),
        ];
        if (scale is null)
        {
            return perExample;
        }

        string[] names = ["crf.transitions", "crf.start", "crf.end"];
        return [.. perExample.Select((g, i) => g.mul(scale[names[i]].unsqueeze(0)))];
    }

    /// <summary>
    /// A linear map's probe (gradient at its output, [B, T, out]), its input [B, T, in] and the names of its weight and
    /// bias.
    /// </summary>
    private sealed record Contribution(string WeightName, Tensor Probe, Tensor Input, string BiasName)
    {
        /// <summary>δ [B, T, out], the gradient at the map's output.</summary>
        public Tensor Delta => Probe.grad ?? torch.zeros_like(Probe);

        /// <summary>Each example's gradient, materialised: Σ_t δ_t x_tᵀ [B, out, in] and Σ_t δ_t [B, out].</summary>
        public DensePerExample PerExample()
        {
            Tensor delta = Delta;
            Tensor weight = delta.transpose(1, 2).bmm(Input); // [B, out, in]
            Tensor bias = delta.sum(1); // [B, out]
            return new DensePerExample(WeightName, weight, BiasName, bias);
        }
    }

    /// <summary>
    /// The maps that share one probe (an LSTM direction's W_ih and W_hh, or the head), with their per-example norms and
    /// clipped sums taken without materialising the per-example gradients.
    /// </summary>
    private sealed record GhostGroup(IReadOnlyList<Contribution> Maps)
    {
        /// <summary>
        /// Σ over the maps of ‖Σ_t δ_t x_tᵀ‖² + ‖Σ_t δ_t‖² per example ([B], float64) without the [B, out, in] tensors
        /// ("ghost norm", Goodfellow 2015; Li et al., ICLR 2022): ‖Σ_t δ_t x_tᵀ‖_F² = Σ_{t,s} (δ_t·δ_s)(x_t·x_s), the
        /// Gram matrices over each run of similar-length examples' steps only (δ is zero past a sentence's length).
        /// </summary>
        public Tensor SquaredNorms(TokenLayout layout)
        {
            Tensor delta = Maps[0].Delta;
            using Tensor sortedDelta = delta.index_select(0, layout.Order).to(ScalarType.Float64);
            Tensor[] sortedInputs = [.. Maps.Select(m => m.Input.index_select(0, layout.Order).to(ScalarType.Float64))];
            var runs = new Tensor[layout.Runs.Length];
            for (int r = 0; r < runs.Length; r++)
            {
                (long start, long count, long steps) = layout.Runs[r];
                using Tensor d = sortedDelta.narrow(0, start, count).narrow(1, 0, steps);
                using Tensor deltaGram = d.bmm(d.transpose(1, 2)); // [count, steps, steps]
                runs[r] = torch.zeros(count, ScalarType.Float64, device: delta.device);
                foreach (Tensor input in sortedInputs)
                {
                    using Tensor x = input.narrow(0, start, count).narrow(1, 0, steps);
                    using Tensor inputGram = x.bmm(x.transpose(1, 2));
                    using Tensor products = deltaGram.mul(inputGram);
                    runs[r].add_(products.sum([1, 2]), TorchScalars.OneInt);
                }
            }

            using Tensor sorted = torch.cat(runs, 0);
            Tensor squared = torch.zeros(delta.shape[0], ScalarType.Float64, device: delta.device).index_copy_(0, layout.Order, sorted);
            using Tensor bias = delta.sum(1).to(ScalarType.Float64);
            using Tensor biasSquared = bias.mul(bias).sum(1);
            for (int i = 0; i < Maps.Count; i++)
            {
                // Each map has a bias of its own, all with the gradient Σ_t δ_t.
                squared.add_(biasSquared, TorchScalars.OneInt);
            }

            return squared;
        }

        /// <summary>
        /// Adds Σᵢ fᵢ Σ_t δ_{i,t} x_{i,t}ᵀ (one [out, N] × [N, in] product over the batch's N real tokens) and
        /// Σᵢ fᵢ Σ_t δ_{i,t} to <paramref name="sums"/> for every map.
        /// </summary>
        /// <param name="factors">fᵢ, each example's clipping factor ([B], float32).</param>
        /// <param name="layout">Where the real tokens are.</param>
        /// <param name="sums">The clipped sums by parameter name.</param>
        public void AddClipped(Tensor factors, TokenLayout layout, Dictionary<string, Tensor> sums)
        {
            Tensor delta = Maps[0].Delta;
            using Tensor rowFactors = factors.index_select(0, layout.RowExamples).unsqueeze(1); // [N, 1]
            using Tensor rows = delta.reshape(-1, delta.shape[2]).index_select(0, layout.Rows); // [N, out]
            using Tensor scaled = rows.mul(rowFactors);
            using Tensor scaledT = scaled.t();
            foreach (Contribution m in Maps)
            {
                using Tensor inputRows = m.Input.reshape(-1, m.Input.shape[2]).index_select(0, layout.Rows); // [N, in]
                Tensor w = scaledT.mm(inputRows);
                Tensor b = scaled.sum(dim: 0);
                sums[m.WeightName] = sums.TryGetValue(m.WeightName, out Tensor? w0) ? TorchScalars.Add(w0, w) : w;
                sums[m.BiasName] = sums.TryGetValue(m.BiasName, out Tensor? b0) ? TorchScalars.Add(b0, b) : b;
            }
        }
    }

    /// <summary>
    /// Where a batch's real tokens are: the examples sorted by length, longest first (<see cref="Order"/>), in runs of up
    /// to 8 with the run's longest length (ghost norms need only those steps), and the flat [B·T] indices of the real
    /// tokens (<see cref="Rows"/>) with their examples (the clipped sums skip padding).
    /// </summary>
    private sealed record TokenLayout(Tensor Order, (long Start, long Count, long Steps)[] Runs, Tensor Rows, Tensor RowExamples)
    {
        private const int RunSize = 8;

        /// <summary>From the sentences' lengths and the padded length <paramref name="t"/>.</summary>
        public static TokenLayout Create(long[] lengths, long t, Device device)
        {
            long[] length = [.. lengths.Select(l => Math.Clamp(l, 1, t))];
            long[] order = [.. Enumerable.Range(0, length.Length).OrderByDescending(i => length[i]).Select(i => (long)i)];
            var runs = new List<(long, long, long)>();
            for (int start = 0; start < order.Length; start += RunSize)
            {
                runs.Add((start, Math.Min(RunSize, order.Length - start), length[order[start]]));
            }

            var rows = new List<long>();
            var rowExamples = new List<long>();
            for (int s = 0; s < length.Length; s++)
            {
                for (long j = 0; j < length[s]; j++)
                {
                    rows.Add((s * t) + j);
                    rowExamples.Add(s);
                }
            }

            return new TokenLayout(torch.tensor(order).to(device), [.. runs], torch.tensor(rows.ToArray()).to(device), torch.tensor(rowExamples.ToArray()).to(device));
        }
    }

    private sealed record DensePerExample(string WeightName, Tensor Weight, string BiasName, Tensor Bias)
    {
        public DensePerExample Scaled(IReadOnlyDictionary<string, Tensor>? scale) => scale is null
            ? this
            : this with { Weight = Weight.mul(scale[WeightName].unsqueeze(0)), Bias = Bias.mul(scale[BiasName].unsqueeze(0)) };

        public Tensor SquaredNorms()
        {
            using Tensor w = Weight.to(ScalarType.Float64);
            using Tensor bb = Bias.to(ScalarType.Float64);
            return TorchScalars.Add(w.mul(w).sum([1, 2]), bb.mul(bb).sum(1));
        }

        public void AddClipped(Tensor factors, Dictionary<string, Tensor> sums)
        {
            Tensor w = Weight.mul(factors.reshape(-1, 1, 1)).sum(dim: 0);
            Tensor b = Bias.mul(factors.reshape(-1, 1)).sum(dim: 0);
            sums[WeightName] = sums.TryGetValue(WeightName, out Tensor? w0) ? TorchScalars.Add(w0, w) : w;
            sums[BiasName] = sums.TryGetValue(BiasName, out Tensor? b0) ? TorchScalars.Add(b0, b) : b;
        }
    }

    /// <summary>
    /// An embedding table's per-example gradient, as its non-padding lookups: for each, the row looked up, the sentence
    /// it belongs to and the vector added to that row (computed once, used for the norms and for the clipped sum).
    /// </summary>
    private sealed record EmbeddingPart(string Name, int Rows, Tensor RowIds, Tensor Examples, Tensor Vectors)
    {
        /// <summary>From <paramref name="ids"/> [B, …] (0 = padding) and the vectors [B, …, D] added to those rows.</summary>
        public static EmbeddingPart Create(string name, Tensor ids, Tensor vectors, int rows)
        {
            long b = ids.shape[0];
            Tensor flatIds = ids.reshape(-1);
            Tensor index = flatIds.ne(TorchScalars.ZeroInt).nonzero().squeeze(1);

            // Not torch.arange: it makes its start and step Scalars implicitly.
            long[] sentences = new long[b];
            for (int i = 0; i < b; i++)
            {
                sentences[i] = i;
            }

            Tensor examples = torch.tensor(sentences).to(ids.device)
                .reshape([b, .. Enumerable.Repeat(1L, (int)ids.dim() - 1)]).expand(ids.shape).reshape(-1);
            return new EmbeddingPart(name, rows, flatIds.index_select(0, index), examples.index_select(0, index),
                vectors.reshape(-1, vectors.shape[^1]).index_select(0, index));
        }

        public EmbeddingPart Scaled(IReadOnlyDictionary<string, Tensor>? scale) => scale is null
            ? this
            : this with { Vectors = Vectors.mul(scale[Name].index_select(0, RowIds)) };

        public Tensor SquaredNorms(long b)
        {
            using Scalar rows = ((long)Rows).ToScalar();
            Tensor keys = TorchScalars.Add(Examples.mul(rows), RowIds);
            (Tensor unique, Tensor? inverse, _) = torch.unique(keys, return_inverse: true);
            Tensor summed = torch.zeros(unique.shape[0], Vectors.shape[1], ScalarType.Float64, device: Vectors.device)
                .index_add_(0, inverse!, Vectors.to(ScalarType.Float64), TorchScalars.OneInt);
            Tensor rowSquares = summed.mul(summed).sum(1);
            Tensor example = unique.div(rows, rounding_mode: RoundingMode.floor);
            return torch.zeros(b, ScalarType.Float64, device: Vectors.device).index_add_(0, example, rowSquares, TorchScalars.OneInt);
        }

        /// <summary>Each example's gradient of the whole table, [B, rows × D].</summary>
        public Tensor PerExample(long b)
        {
            using Scalar rows = ((long)Rows).ToScalar();
            Tensor keys = TorchScalars.Add(Examples.mul(rows), RowIds);
            return torch.zeros(b * Rows, Vectors.shape[1], Vectors.dtype, device: Vectors.device)
                .index_add_(0, keys, Vectors, TorchScalars.OneInt).reshape(b, -1);
        }

        public Tensor ClippedSum(Tensor factors, Parameter table)
        {
            Tensor scaled = Vectors.mul(factors.index_select(0, Examples).unsqueeze(1));
            return torch.zeros_like(table).index_add_(0, RowIds, scaled, TorchScalars.OneInt);
        }
    }
}
