using System.Globalization;

namespace SecureFed.Protocol;

/// <summary>Options of the <see cref="ServerOptimizer"/>.</summary>
public sealed record ServerOptimizerOptions
{
    /// <summary>The update rule.</summary>
    /// <value>The default value is <see cref="ServerOptimizerKind.Average"/>.</value>
    public ServerOptimizerKind Kind { get; init; } = ServerOptimizerKind.Average;

    /// <summary>Server learning rate η.</summary>
    /// <value>The default value is 1.</value>
    public double LearningRate { get; init; } = 1.0;

    /// <summary>β₁: the momentum of <see cref="ServerOptimizerKind.Momentum"/>, Adam's first-moment decay.</summary>
    /// <value>The default value is 0.9.</value>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>β₂: Adam's second-moment decay.</summary>
    /// <value>The default value is 0.99.</value>
    public double Beta2 { get; init; } = 0.99;

    /// <summary>τ: Adam's adaptivity (added to √v).</summary>
    /// <value>The default value is 1e-3.</value>
    public double Tau { get; init; } = 1e-3;

    /// <summary>Parses a kind name: avg (or average, fedavg), momentum (fedavgm), adam (fedadam).</summary>
    /// <exception cref="ArgumentException">Unknown name.</exception>
    public static ServerOptimizerKind ParseKind(string name) => (name ?? "").Trim().ToLowerInvariant() switch
    {
        "avg" or "average" or "fedavg" => ServerOptimizerKind.Average,
        "momentum" or "fedavgm" => ServerOptimizerKind.Momentum,
        "adam" or "fedadam" => ServerOptimizerKind.Adam,
        _ => throw new ArgumentException($"The server optimizer must be avg, momentum or adam, not '{name}'."),
    };

    /// <summary>Every problem with the options, each naming the setting (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!double.IsFinite(LearningRate) || LearningRate <= 0)
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"The server learning rate must be a positive number, not {LearningRate}."));
        }

        if (!double.IsFinite(Beta1) || Beta1 < 0 || Beta1 >= 1)
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"The server β1 (momentum) must be in [0, 1), not {Beta1}."));
        }

        if (!double.IsFinite(Beta2) || Beta2 < 0 || Beta2 >= 1)
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"The server β2 must be in [0, 1), not {Beta2}."));
        }

        if (!double.IsFinite(Tau) || Tau <= 0)
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"The server τ (adaptivity) must be a positive number, not {Tau}."));
        }

        return errors;
    }
}
