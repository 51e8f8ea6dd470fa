using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// Adam (PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no AMSGrad) or plain SGD over a fixed list of parameters, with
/// optional decoupled weight decay (<c>optim.AdamW</c>'s rule: p ← p·(1 − lr·λ) before the update; for SGD the same as
/// L2), the same arithmetic in the same order as TorchSharp's <c>optim.Adam</c> / <c>optim.AdamW</c> / <c>optim.SGD</c>, but with every
/// <see cref="Scalar"/> explicit and alive for the whole call. TorchSharp's optimizers convert numbers to Scalars
/// implicitly inside <c>step</c> (<c>exp_avg.mul_(beta1)</c>), which lets a collection on another thread free them while
/// libtorch reads them; several trainers in one process (the demo's agents) then crash (see <see cref="TorchScalars"/>).
/// </summary>
internal sealed class ParameterOptimizer : IDisposable
{
    private const double Beta1 = 0.9;
    private const double Beta2 = 0.999;
    private const double Epsilon = 1e-8;

    private readonly Parameter[] _parameters;
    private readonly TaggerOptimizer _kind;
    private readonly Tensor[]? _expAvg;
    private readonly Tensor[]? _expAvgSq;
    private readonly Scalar _beta1 = Beta1.ToScalar();
    private readonly Scalar _oneMinusBeta1 = (1 - Beta1).ToScalar();
    private readonly Scalar _beta2 = Beta2.ToScalar();
    private readonly Scalar _oneMinusBeta2 = (1 - Beta2).ToScalar();
    private readonly Scalar _epsilon = Epsilon.ToScalar();
    private readonly long[] _steps;

    public ParameterOptimizer(Parameter[] parameters, TaggerOptimizer kind, double learningRate, double weightDecay = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(weightDecay);
        ArgumentNullException.ThrowIfNull(parameters);
        _parameters = parameters;
        _kind = kind;
        LearningRate = learningRate;
        WeightDecay = weightDecay;
        _steps = new long[parameters.Length];
        if (kind == TaggerOptimizer.Adam)
        {
            using var noGrad = torch.no_grad();
            _expAvg = [.. parameters.Select(p => torch.zeros_like(p).DetachFromDisposeScope())];
            _expAvgSq = [.. parameters.Select(p => torch.zeros_like(p).DetachFromDisposeScope())];
        }
    }

    /// <summary>The learning rate of the next <see cref="Step"/>.</summary>
    public double LearningRate { get; set; }

    /// <summary>Decoupled weight decay λ: each <see cref="Step"/> first scales every parameter with a gradient by 1 − lr·λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Zeroes the parameters' gradients (those that exist).</summary>
    public void ZeroGrad()
    {
        foreach (Parameter p in _parameters)
        {
            p.grad?.zero_();
        }
    }

    /// <summary>One update from the parameters' current gradients; parameters without a gradient are left alone.</summary>
    public void Step()
    {
        using var noGrad = torch.no_grad();
        if (WeightDecay > 0)
        {
            using Scalar keep = (1 - (LearningRate * WeightDecay)).ToScalar();
            foreach (Parameter p in _parameters)
            {
                if (p.grad is not null)
                {
                    p.mul_(keep);
                }
            }
        }

        if (_kind == TaggerOptimizer.Sgd)
        {
            using Scalar minusRate = (-LearningRate).ToScalar();
            foreach (Parameter p in _parameters)
            {
                if (p.grad is Tensor g)
                {
                    p.add_(g, minusRate);
                }
            }

            return;
        }

        // Adam as torch.optim.Adam (single-tensor, amsgrad off): m = β1 m + (1 − β1) g; v = β2 v + (1 − β2) g²;
        // p −= lr / (1 − β1^t) · m / (√v / √(1 − β2^t) + ε), t counted per parameter (steps it had a gradient in).
        for (int i = 0; i < _parameters.Length; i++)
        {
            if (_parameters[i].grad is not Tensor g)
            {
                continue;
            }

            long step = ++_steps[i];
            double biasCorrection1 = 1 - Math.Pow(Beta1, step);
            double biasCorrection2 = 1 - Math.Pow(Beta2, step);
            using Scalar sqrtCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
            using Scalar minusStepSize = (-LearningRate / biasCorrection1).ToScalar();

            _expAvg![i].mul_(_beta1).add_(g, _oneMinusBeta1);
            _expAvgSq![i].mul_(_beta2).addcmul_(g, g, _oneMinusBeta2);
            using Tensor root = _expAvgSq[i].sqrt();
            using Tensor denom = root.div_(sqrtCorrection2).add_(_epsilon, TorchScalars.OneInt);
            _parameters[i].addcdiv_(_expAvg[i], denom, minusStepSize);
        }
    }

    public void Dispose()
    {
        foreach (Tensor t in (_expAvg ?? []).Concat(_expAvgSq ?? []))
        {
            t.Dispose();
        }

        _beta1.Dispose();
        _oneMinusBeta1.Dispose();
        _beta2.Dispose();
        _oneMinusBeta2.Dispose();
        _epsilon.Dispose();
    }
}
