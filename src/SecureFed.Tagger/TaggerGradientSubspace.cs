using SecureFed.Tagger.Internal;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureFed.Tagger;

/// <summary>
/// A k-dimensional subspace of the model's parameter space, spanned by the top principal directions of per-example
/// gradients on PUBLIC data at a public model, for projected DP-SGD (Zhou, Wu and Banerjee, "Bypassing the Ambient
/// Dimension: Private SGD with Gradient Subspace Identification", ICLR 2021; Yu et al., "Do Not Let Privacy Overbill
/// Utility: Gradient Embedding Perturbation", ICLR 2021). Each private example's gradient g is replaced by its k
/// coordinates V g in the subspace (V has orthonormal rows), clipped to C there, summed, and the Gaussian noise is
/// drawn in k dimensions instead of P: the noise's norm shrinks by √(k / P) while the sensitivity stays C, so the
/// accountant's ε is unchanged. The update Vᵀ(Σ clip(V gᵢ) + N(0, σ²C² I_k)) is post-processing. The part of each
/// gradient outside the subspace is dropped (a bias, which is why the subspace should be refreshed at the current
/// public model as training moves).
/// </summary>
/// <remarks>V is computed from the Gram matrix of the public gradients G (n × P): G Gᵀ = U Λ Uᵀ, V = Λ^(-1/2) Uᵀ G for
/// the k largest eigenvalues. It depends only on public data and a public model (e.g. the announced global model), so
/// it costs no privacy.</remarks>
public sealed class TaggerGradientSubspace : IDisposable
{
    private readonly float[] _basis;
    private Tensor? _tensor;

    private TaggerGradientSubspace(float[] basis, int dimension, int parameterCount, double explainedShare)
    {
        _basis = basis;
        Dimension = dimension;
        ParameterCount = parameterCount;
        ExplainedShare = explainedShare;
    }

    /// <summary>k, the subspace's dimension.</summary>
    public int Dimension { get; }

    /// <summary>P, the model's parameter count.</summary>
    public int ParameterCount { get; }

    /// <summary>The share of the public gradients' squared norm that lies in the subspace, in [0, 1].</summary>
    public double ExplainedShare { get; }

    /// <summary>
    /// The top-<paramref name="dimension"/> principal directions of per-example gradients (summed token loss, as DP-SGD
    /// clips them) of the first <paramref name="maxSentences"/> non-empty sentences of <paramref name="publicData"/> at
    /// <paramref name="model"/>, each gradient first scaled by <paramref name="scale"/> (the DP-SGD preconditioner's
    /// part applied before clipping, or null) and restricted to the parameters <paramref name="trains"/> accepts.
    /// </summary>
    /// <param name="model">A public model (its weights are not changed).</param>
    /// <param name="publicData">Public sentences only: never a site's data.</param>
    /// <param name="dimension">k, at least 1 and at most the number of public sentences used.</param>
    /// <param name="maxSentences">How many public sentences to take (n); n × P floats are held in memory.</param>
    /// <param name="scale">Optional factor per parameter in <see cref="TaggerModel.Flatten"/> order.</param>
    /// <param name="trains">Which parameters DP-SGD trains (others get no direction); null for all.</param>
    /// <returns>The subspace.</returns>
    /// <exception cref="ArgumentException">A setting is out of range or the public data is too small (named in the message).</exception>
    public static TaggerGradientSubspace FromPublicData(TaggerModel model, IReadOnlyList<Sentence> publicData, int dimension, int maxSentences = 1000, IReadOnlyList<float>? scale = null, Func<string, bool>? trains = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(publicData);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSentences, dimension);
        int p = checked((int)model.ParameterCount);
        if (scale is not null && scale.Count != p)
        {
            throw new ArgumentException($"the scale has {scale.Count} factors but the model has {p} parameters", nameof(scale));
        }

        EncodedSentence[] encoded = [.. publicData.Where(s => s.Length > 0).Take(maxSentences).Select(model.Encode)];
        if (encoded.Length < dimension)
        {
            throw new ArgumentException($"the public data has {encoded.Length} non-empty sentences; a {dimension}-dimensional gradient subspace needs at least as many", nameof(publicData));
        }

        long bytes = (long)encoded.Length * p * sizeof(float);
        if (bytes > 4L << 30)
        {
            throw new ArgumentException($"{encoded.Length} public gradients of {p} parameters need {bytes >> 20} MiB; take fewer sentences", nameof(maxSentences));
        }

        using var scope = torch.NewDisposeScope();
        Tensor gradients = PublicGradients(model, encoded, scale, trains);
        using (torch.no_grad())
        {
            Tensor g64 = gradients.to(ScalarType.Float64);
            Tensor gram = g64.matmul(g64.t());
            (Tensor values, Tensor vectors) = torch.linalg.eigh(gram); // ascending
            using Scalar tiny = 1e-12.ToScalar();
            using Scalar zero = 0.0.ToScalar();
            Tensor top = values.flip(0).narrow(0, 0, dimension).clamp_min(tiny);
            Tensor u = vectors.flip(1).narrow(1, 0, dimension); // n × k
            Tensor basis = u.t().matmul(g64).div(top.sqrt().unsqueeze(1)); // k × P, orthonormal rows
            double total = values.clamp_min(zero).sum().item<double>();
            double explained = total > 0 ? top.sum().item<double>() / total : 0;
            float[] data = basis.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
            if (data.Any(v => !float.IsFinite(v)))
            {
                throw new ArgumentException("the public gradients' subspace is not finite (are the public gradients all zero?)", nameof(publicData));
            }

            return new TaggerGradientSubspace(data, dimension, p, Math.Clamp(explained, 0, 1));
        }
    }

    /// <summary>The public per-example gradients, [n, P], scaled and restricted to the trained parameters.</summary>
    private static Tensor PublicGradients(TaggerModel model, EncodedSentence[] encoded, IReadOnlyList<float>? scale, Func<string, bool>? trains)
    {
        Tensor mask = Mask(model, scale, trains);
        Tensor gradients = torch.empty([encoded.Length, model.ParameterCount], ScalarType.Float32, model.Device);
        var rng = new Random(1);
        model.Network.eval();
        try
        {
            if (BatchedClipping.Supports(model.Config))
            {
                int offset = 0;
                foreach (EncodedSentence[] chunk in encoded.Chunk(64))
                {
                    using var chunkScope = torch.NewDisposeScope();
                    var tensors = BatchTensors.Create(chunk, model.Config, model.Device, withLabels: true, wordDropout: 0, rng);
                    Tensor g = BatchedClipping.PerExampleGradients(model, tensors, _ => true, out _);
                    using (torch.no_grad())
                    {
                        gradients.narrow(0, offset, chunk.Length).copy_(g.mul(mask.unsqueeze(0)));
                    }

                    offset += chunk.Length;
                }

                return gradients;
            }

            for (int i = 0; i < encoded.Length; i++)
            {
                using var exampleScope = torch.NewDisposeScope();
                Tensor[] grads = TaggerTrainer.PerExampleGradient(model, encoded[i], rng, out _);
                using (torch.no_grad())
                {
                    gradients[i].copy_(torch.cat([.. grads.Select(g => g.reshape(-1))]).mul(mask));
                }
            }

            return gradients;
        }
        finally
        {
            foreach ((_, var parameter) in model.Parameters)
            {
                parameter.grad?.zero_();
            }

            model.Network.train();
        }
    }

    /// <summary>The basis V (k × P, row-major) as a tensor on <paramref name="device"/>, made once and kept.</summary>
    internal Tensor Basis(Device device)
    {
        if (_tensor is null || _tensor.device != device)
        {
            _tensor?.Dispose();
            _tensor = torch.tensor(_basis, [Dimension, ParameterCount]).to(device).DetachFromDisposeScope();
        }

        return _tensor;
    }

    /// <summary>The scale per parameter (1 without one), zero for the parameters DP-SGD does not train, as one flat tensor.</summary>
    internal static Tensor Mask(TaggerModel model, IReadOnlyList<float>? scale, Func<string, bool>? trains)
    {
        float[] values = scale is null ? Enumerable.Repeat(1f, checked((int)model.ParameterCount)).ToArray() : [.. scale];
        int offset = 0;
        foreach ((string name, var parameter) in model.Parameters)
        {
            int n = checked((int)parameter.numel());
            if (trains is not null && !trains(name))
            {
                Array.Clear(values, offset, n);
            }

            offset += n;
        }

        return torch.tensor(values).to(model.Device);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _tensor?.Dispose();
        _tensor = null;
    }
}
