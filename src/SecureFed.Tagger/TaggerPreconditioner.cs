using SecureFed.Tagger.Internal;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureFed.Tagger;

/// <summary>
/// A fixed diagonal preconditioner for DP-SGD estimated on public data (AdaDPS, Li et al., "Private Adaptive
/// Optimization with Side Information", ICML 2022): Adam's second moment, measured on a public corpus at the public
/// model, stands in for the second moment of the private gradients, which DP noise hides.
/// </summary>
public static class TaggerPreconditioner
{
    /// <summary>
    /// Estimates v = E[g²] per parameter over one pass of minibatch gradients (per-token mean loss, as
    /// <see cref="TaggerTrainer"/> trains without DP) of <paramref name="publicData"/> at <paramref name="model"/>, and
    /// returns A = 1 / max(√v, f) / Z: f is <paramref name="floorRatio"/> times the median of √v over the coordinates with
    /// a gradient (so rows the public data never touched get a large but bounded factor), and Z the median of the
    /// factors (so a typical coordinate keeps the learning rate and clip it had without the preconditioner).
    /// </summary>
    /// <param name="model">The public model (its weights are not changed).</param>
    /// <param name="publicData">Public sentences only: never a site's data.</param>
    /// <param name="batchSize">Sentences per minibatch.</param>
    /// <param name="floorRatio">The floor f as a fraction of the median √v, in (0, 1].</param>
    /// <param name="perTensor">
    /// One factor per weight tensor instead of per coordinate: v is the mean of E[g²] over the tensor (layer-wise
    /// scaling; the noise-free speed of per-coordinate scaling is lost, but no single coordinate gets a huge step).
    /// </param>
    /// <returns>One positive factor per parameter, in <see cref="TaggerModel.Flatten"/> order.</returns>
    /// <exception cref="ArgumentException">The public data has no non-empty sentence, or a setting is out of range.</exception>
    public static float[] FromPublicData(TaggerModel model, IReadOnlyList<Sentence> publicData, int batchSize = 32, double floorRatio = 0.1, bool perTensor = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(publicData);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (!(floorRatio > 0 && floorRatio <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(floorRatio), floorRatio, "floorRatio must be in (0, 1].");
        }

        EncodedSentence[] encoded = [.. publicData.Where(s => s.Length > 0).Select(model.Encode)];
        if (encoded.Length == 0)
        {
            throw new ArgumentException("the public data has no non-empty sentence", nameof(publicData));
        }

        var parameters = model.Parameters.Select(p => p.Tensor).ToArray();
        Tensor[] sums = [.. parameters.Select(p => torch.zeros_like(p, dtype: ScalarType.Float64).DetachFromDisposeScope())];
        int batches = 0;
        var rng = new Random(1);
        model.Network.eval();
        try
        {
            foreach (EncodedSentence[] batch in encoded.OrderBy(s => s.Length).Chunk(batchSize))
            {
                using var scope = torch.NewDisposeScope();
                var tensors = BatchTensors.Create(batch, model.Config, model.Device, withLabels: true, wordDropout: 0, rng);
                using Scalar tokens = Math.Max(1, tensors.TokenCount).ToScalar();
                Tensor loss = model.Network.SummedLoss(model.Network.Forward(tensors), tensors).div(tokens);
                foreach (var p in parameters)
                {
                    p.grad?.zero_();
                }

                loss.backward();
                using (torch.no_grad())
                {
                    for (int i = 0; i < parameters.Length; i++)
                    {
                        if (parameters[i].grad is Tensor g)
                        {
                            Tensor g64 = g.to(ScalarType.Float64);
                            sums[i].addcmul_(g64, g64, TorchScalars.One);
                        }
                    }
                }

                batches++;
            }

            foreach (var p in parameters)
            {
                p.grad?.zero_();
            }

            double[] squares = new double[model.ParameterCount];
            int offset = 0;
            foreach (Tensor sum in sums)
            {
                double[] values = sum.cpu().contiguous().data<double>().ToArray();
                if (perTensor && values.Length > 0)
                {
                    Array.Fill(values, values.Average());
                }

                values.CopyTo(squares, offset);
                offset += values.Length;
            }

            return Factors(squares, batches, floorRatio);
        }
        finally
        {
            foreach (Tensor sum in sums)
            {
                sum.Dispose();
            }

            model.Network.train();
        }
    }

    /// <summary>
    /// The layer-wise factors of <see cref="FromPublicData"/> (<c>perTensor: true</c>) as one number per weight tensor, in
    /// <see cref="TaggerModel.ParameterLayout"/> order: what an aggregator announces as a round's <c>layer_scales</c>
    /// (docs/PROTOCOL.md, "Layer scales"). Public: they come from public data at the public model.
    /// </summary>
    /// <param name="model">The public model (its weights are not changed).</param>
    /// <param name="publicData">Public sentences only: never a site's data.</param>
    /// <param name="batchSize">Sentences per minibatch.</param>
    /// <param name="floorRatio">The floor f as a fraction of the median √v, in (0, 1].</param>
    /// <returns>One positive factor per parameter tensor.</returns>
    /// <exception cref="ArgumentException">The public data has no non-empty sentence, or a setting is out of range.</exception>
    public static float[] LayerScalesFromPublicData(TaggerModel model, IReadOnlyList<Sentence> publicData, int batchSize = 32, double floorRatio = 0.1)
    {
        ArgumentNullException.ThrowIfNull(model);
        float[] flat = FromPublicData(model, publicData, batchSize, floorRatio, perTensor: true);
        var scales = new float[model.ParameterLayout.Count];
        long offset = 0;
        for (int i = 0; i < scales.Length; i++)
        {
            scales[i] = flat[offset];
            offset += Size(model.ParameterLayout[i]);
        }

        return scales;
    }

    /// <summary>
    /// Expands one factor per weight tensor into the per-parameter preconditioner of <see cref="DpSgdOptions.Preconditioner"/>.
    /// </summary>
    /// <param name="layout">The model's tensors (<see cref="TaggerModel.ParameterLayout"/>).</param>
    /// <param name="scales">One factor per tensor, each positive and finite.</param>
    /// <returns>A factor per parameter in <see cref="TaggerModel.Flatten"/> order.</returns>
    /// <exception cref="ArgumentException">The count differs from the model's tensors, or a factor is not positive and finite.</exception>
    public static float[] ExpandLayerScales(IReadOnlyList<ParameterInfo> layout, IReadOnlyList<float> scales)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(scales);
        if (scales.Count != layout.Count)
        {
            throw new ArgumentException($"{scales.Count} layer scales for a model of {layout.Count} parameter tensors; one per tensor is needed.", nameof(scales));
        }

        var result = new float[layout.Sum(Size)];
        long offset = 0;
        for (int i = 0; i < layout.Count; i++)
        {
            if (!(scales[i] > 0) || float.IsInfinity(scales[i]))
            {
                throw new ArgumentException($"layer scale {i} ({layout[i].Name}) is {scales[i]}; every scale must be a positive finite number.", nameof(scales));
            }

            long n = Size(layout[i]);
            Array.Fill(result, scales[i], checked((int)offset), checked((int)n));
            offset += n;
        }

        return result;
    }

    private static long Size(ParameterInfo info) => info.Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>A = 1 / max(√(Σg² / batches), f) / Z as documented on <see cref="FromPublicData"/>.</summary>
    internal static float[] Factors(double[] squares, int batches, double floorRatio)
    {
        double[] root = [.. squares.Select(s => Math.Sqrt(s / Math.Max(1, batches)))];
        double[] touched = [.. root.Where(r => r > 0)];
        double floor = touched.Length == 0 ? 1 : Median(touched) * floorRatio;
        double[] factors = [.. root.Select(r => 1 / Math.Max(r, floor))];
        double z = Median(factors);
        return [.. factors.Select(f => (float)(f / z))];
    }

    private static double Median(double[] values)
    {
        double[] sorted = [.. values.Order()];
        return sorted[sorted.Length / 2];
    }
}
