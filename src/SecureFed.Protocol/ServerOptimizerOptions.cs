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

    /// <summary>
    /// Φ, the variance per coordinate of the DP noise in each round's averaged update (0: none known). With
    /// <see cref="ServerOptimizerKind.Adam"/> and Φ &gt; 0 the second moment is corrected for it (DP-AdamBC, Tang et al.,
    /// "DP-AdamBC: Your DP-Adam Is Actually DP-SGD (Unless You Apply Bias Correction)", AAAI 2024): Adam's moments are
    /// bias-corrected for their start at zero and the step divides by √max(v̂ − Φ, <see cref="NoiseFloor"/> Φ) instead
    /// of √v̂, which under DP noise is mostly Φ. Φ follows from public settings (σ, C, q, N and the sites' learning
    /// rate), so the correction costs no privacy.
    /// </summary>
    /// <value>The default value is 0.</value>
    public double NoiseVariance { get; init; }

    /// <summary>With <see cref="NoiseVariance"/>: the floor of the corrected second moment, as a multiple of Φ.</summary>
    /// <value>The default value is 1.</value>
    public double NoiseFloor { get; init; } = 1;

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
    public IReadOnlyList<string> Validate() => Validate((Func<string, string>?)null);

    /// <summary>
    /// As <see cref="Validate()"/>, each message led by the configuration key of the setting it concerns when
    /// <paramref name="settingPrefix"/> is given: the prefix and the property's name (e.g. <c>SecureFed:Server</c> gives
    /// <c>SecureFed:ServerTau</c>), and the prefix and <c>Optimizer</c> for <see cref="Kind"/>.
    /// </summary>
    public IReadOnlyList<string> Validate(string? settingPrefix) =>
        Validate(settingPrefix is null ? null : setting => settingPrefix + setting);

    /// <summary>
    /// As <see cref="Validate()"/>, each message led by <paramref name="settingName"/>'s name for the setting it concerns
    /// (its argument is the property's name, or <c>Optimizer</c> for <see cref="Kind"/>), e.g.
    /// <see cref="CommandLineOption"/> for the commands' <c>--server-…</c> options.
    /// </summary>
    public IReadOnlyList<string> Validate(Func<string, string>? settingName)
    {
        var errors = new Problems(settingName);
        if (!double.IsFinite(LearningRate) || LearningRate <= 0)
        {
            errors.Add("LearningRate", string.Create(CultureInfo.InvariantCulture, $"The server learning rate must be a positive number, not {LearningRate}."));
        }

        if (!double.IsFinite(Beta1) || Beta1 < 0 || Beta1 >= 1)
        {
            errors.Add("Beta1", string.Create(CultureInfo.InvariantCulture, $"The server β1 (momentum) must be in [0, 1), not {Beta1}."));
        }

        if (!double.IsFinite(Beta2) || Beta2 < 0 || Beta2 >= 1)
        {
            errors.Add("Beta2", string.Create(CultureInfo.InvariantCulture, $"The server β2 must be in [0, 1), not {Beta2}."));
        }

        if (!double.IsFinite(Tau) || Tau <= 0)
        {
            errors.Add("Tau", string.Create(CultureInfo.InvariantCulture, $"The server τ (adaptivity) must be a positive number, not {Tau}."));
        }

        if (!double.IsFinite(NoiseVariance) || NoiseVariance < 0)
        {
            errors.Add("NoiseVariance", string.Create(CultureInfo.InvariantCulture, $"The server's noise variance Φ must be 0 (none) or a positive number, not {NoiseVariance}."));
        }
        else if (NoiseVariance > 0 && Kind != ServerOptimizerKind.Adam)
        {
            errors.Add("Optimizer", $"The noise correction (Φ > 0) applies to the adam server optimizer only, not {Kind.ToString().ToLowerInvariant()}.");
        }

        if (!double.IsFinite(NoiseFloor) || NoiseFloor <= 0)
        {
            errors.Add("NoiseFloor", string.Create(CultureInfo.InvariantCulture, $"The server's noise floor must be a positive multiple of Φ, not {NoiseFloor}."));
        }

        return errors.Messages;
    }

    /// <summary>
    /// The command-line option (demo, experiment) that sets the property named <paramref name="setting"/>:
    /// <c>--server-lr</c>, <c>--server-beta1</c>, <c>--server-beta2</c>, <c>--server-tau</c>,
    /// <c>--server-noise-correction</c> (Φ), <c>--server-noise-floor</c>, <c>--server-optimizer</c>.
    /// </summary>
    public static string CommandLineOption(string setting) => setting switch
    {
        nameof(LearningRate) => "--server-lr",
        nameof(Beta1) => "--server-beta1",
        nameof(Beta2) => "--server-beta2",
        nameof(Tau) => "--server-tau",
        nameof(NoiseVariance) => "--server-noise-correction",
        nameof(NoiseFloor) => "--server-noise-floor",
        _ => "--server-optimizer",
    };

    /// <summary>Problems, each led by the setting's name when a naming is given.</summary>
    private sealed class Problems(Func<string, string>? name)
    {
        public List<string> Messages { get; } = [];

        public void Add(string setting, string message) =>
            Messages.Add(name is null ? message : $"{name(setting)}: {char.ToLowerInvariant(message[0])}{message[1..]}");
    }
}
