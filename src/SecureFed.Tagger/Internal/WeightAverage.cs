using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Internal;

/// <summary>Exponential moving average of parameter tensors (Polyak averaging with a short warm-up).</summary>
internal sealed class WeightAverage : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly Tensor[] _average;
    private readonly double _decay;
    private long _updates;

    public WeightAverage(Parameter[] parameters, double decay)
    {
        _parameters = parameters;
        _decay = decay;
        using var noGrad = torch.no_grad();
        _average = [.. parameters.Select(p => p.detach().clone().DetachFromDisposeScope())];
    }

    /// <summary>Folds the current parameter values into the average.</summary>
    public void Update()
    {
        _updates++;
        double d = Math.Min(_decay, (1.0 + _updates) / (10.0 + _updates));
        using var noGrad = torch.no_grad();
        using Scalar decay = d.ToScalar();
        using Scalar weight = (1 - d).ToScalar();
        for (int i = 0; i < _parameters.Length; i++)
        {
            _average[i].mul_(decay).add_(_parameters[i], weight);
        }
    }

    /// <summary>Overwrites <paramref name="parameters"/> with the average.</summary>
    public void CopyTo(Parameter[] parameters)
    {
        using var noGrad = torch.no_grad();
        for (int i = 0; i < parameters.Length; i++)
        {
            parameters[i].copy_(_average[i]);
        }
    }

    public void Dispose()
    {
        foreach (Tensor t in _average)
        {
            t.Dispose();
        }
    }
}
