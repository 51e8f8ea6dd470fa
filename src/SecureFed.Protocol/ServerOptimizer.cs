using System.Globalization;

namespace SecureFed.Protocol;

/// <summary>
/// How the aggregator turns the averaged update of a round into the next global model (Reddi et al., "Adaptive
/// Federated Optimization", ICLR 2021). The averaged update Δ (the weighted mean of the sites' deltas, decoded from the
/// unmasked sum) is treated as a pseudo-gradient step:
/// <list type="bullet">
/// <item><see cref="ServerOptimizerKind.Average"/> (FedAvg): θ ← θ + η Δ.</item>
/// <item><see cref="ServerOptimizerKind.Momentum"/> (FedAvgM): v ← β₁ v + Δ; θ ← θ + η v.</item>
/// <item><see cref="ServerOptimizerKind.Adam"/> (FedAdam): m ← β₁ m + (1 − β₁) Δ; v ← β₂ v + (1 − β₂) Δ²;
/// θ ← θ + η m / (√v + τ); with <see cref="ServerOptimizerOptions.NoiseVariance"/> Φ &gt; 0, DP-AdamBC's rule on the
/// bias-corrected moments: θ ← θ + η m̂ / (√max(v̂ − Φ, floor Φ) + τ).</item>
/// </list>
/// It only post-processes the sum the aggregator learns anyway, so it costs no privacy and reveals nothing more. The
/// state (m, v) belongs to the aggregator and persists across rounds; <see cref="ExportState"/> and
/// <see cref="RestoreState"/> carry it through a restart.
/// </summary>
public sealed class ServerOptimizer
{
    private readonly ServerOptimizerOptions _options;
    private double[]? _first;
    private double[]? _second;
    private double _noiseVariance;
    private double _noiseMoment; // β₂-average of the Φ of the steps so far, like v (not bias-corrected)
    private double _stepNoiseMoment; // _noiseMoment with the step begun by BeginStep included; kept by EndStep
    private bool _noiseVaries;

    /// <summary>Creates an optimizer with no history.</summary>
    /// <exception cref="ArgumentException">An option is out of range (named in the message).</exception>
    public ServerOptimizer(ServerOptimizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<string> errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", errors), nameof(options));
        }

        _options = options;
        _noiseVariance = options.NoiseVariance;
    }

    /// <summary>The options.</summary>
    public ServerOptimizerOptions Options => _options;

    /// <summary>Φ of the coming steps: <see cref="ServerOptimizerOptions.NoiseVariance"/> until <see cref="SetNoiseVariance"/> changes it.</summary>
    public double NoiseVariance => _noiseVariance;

    /// <summary>
    /// Changes Φ for the coming steps, when the noise in the averaged update changes between rounds (adaptive clipping
    /// scales it with the clip). The second moment v averages Δ² over past steps, so the corrected rule then subtracts
    /// the same β₂-average of the past steps' Φ instead of the current one (for a constant Φ the two are equal).
    /// </summary>
    /// <param name="noiseVariance">Φ &gt; 0 per coordinate.</param>
    /// <exception cref="InvalidOperationException">The optimizer is not Adam with a noise correction (<see cref="ServerOptimizerOptions.NoiseVariance"/> &gt; 0).</exception>
    /// <exception cref="ArgumentOutOfRangeException">Φ is not positive and finite.</exception>
    public void SetNoiseVariance(double noiseVariance)
    {
        if (_options.Kind != ServerOptimizerKind.Adam || _options.NoiseVariance <= 0)
        {
            throw new InvalidOperationException("Only Adam with a noise correction (NoiseVariance > 0) has a noise variance to change.");
        }

        if (!double.IsFinite(noiseVariance) || noiseVariance <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(noiseVariance), noiseVariance, "The noise variance must be finite and > 0.");
        }

        _noiseVaries |= noiseVariance != _noiseVariance;
        _noiseVariance = noiseVariance;
    }

    /// <summary>Rounds applied since the start (or restored).</summary>
    public long Steps { get; private set; }

    /// <summary>The next global model from <paramref name="model"/> and the round's averaged update.</summary>
    /// <exception cref="RoundAbortedException">The result is not finite.</exception>
    public float[] Step(ReadOnlySpan<float> model, ReadOnlySpan<double> averagedUpdate)
    {
        if (model.Length != averagedUpdate.Length)
        {
            throw new ArgumentException($"The model has {model.Length} parameters; the update has {averagedUpdate.Length}.", nameof(averagedUpdate));
        }

        BeginStep(model.Length);
        float[] next = new float[model.Length];
        StepRun(0, model, averagedUpdate, next);
        EndStep();
        return next;
    }

    /// <summary>
    /// Starts a step taken a run of coordinates at a time (<see cref="StepRun"/>, then <see cref="EndStep"/>), as the
    /// aggregator does while it reads the unmasked sum in order: the rule is per coordinate, so the runs together give
    /// <see cref="Step"/>'s result bit for bit. Allocates the moments on the first step.
    /// </summary>
    /// <exception cref="InvalidOperationException">The state's length is not <paramref name="parameterCount"/>.</exception>
    public void BeginStep(int parameterCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(parameterCount);
        if (_first is not null && _first.Length != parameterCount)
        {
            throw new InvalidOperationException($"The optimizer state has {_first.Length} parameters; the model has {parameterCount} (did the model change?).");
        }

        // Once per step, not per run: the runs of one step must all subtract the same Φ (a step begun again after an
        // abort computes it again from the same _noiseMoment, which only EndStep moves on).
        _stepNoiseMoment = (_options.Beta2 * _noiseMoment) + ((1 - _options.Beta2) * _noiseVariance);
        switch (_options.Kind)
        {
            case ServerOptimizerKind.Momentum:
                _first ??= new double[parameterCount];
                break;
            case ServerOptimizerKind.Adam:
                _first ??= new double[parameterCount];
                _second ??= new double[parameterCount];
                break;
        }
    }

    /// <summary>
    /// Coordinates [<paramref name="offset"/>, <paramref name="offset"/> + n) of the step begun by <see cref="BeginStep"/>:
    /// <paramref name="model"/>, <paramref name="averagedUpdate"/> and <paramref name="next"/> are that run's values.
    /// Each coordinate must be stepped once per step; the moments of the run are updated in place.
    /// </summary>
    /// <exception cref="RoundAbortedException">A result is not finite (the message names the parameter).</exception>
    public void StepRun(int offset, ReadOnlySpan<float> model, ReadOnlySpan<double> averagedUpdate, Span<float> next)
    {
        if (model.Length != averagedUpdate.Length || next.Length != model.Length)
        {
            throw new ArgumentException($"The model ({model.Length}), the update ({averagedUpdate.Length}) and the result ({next.Length}) must have the same length.", nameof(averagedUpdate));
        }

        if (offset < 0 || (_first is not null && offset > _first.Length - model.Length))
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"A run of {model.Length} at {offset} is outside the optimizer's {_first?.Length} parameters.");
        }

        if (_options.Kind != ServerOptimizerKind.Average && _first is null)
        {
            throw new InvalidOperationException("BeginStep must come before StepRun.");
        }

        double eta = _options.LearningRate;
        switch (_options.Kind)
        {
            case ServerOptimizerKind.Average:
                for (int i = 0; i < next.Length; i++)
                {
                    next[i] = (float)(model[i] + (eta * averagedUpdate[i]));
                }

                break;
            case ServerOptimizerKind.Momentum:
                Span<double> velocity = _first.AsSpan(offset, model.Length);
                double beta = _options.Beta1;
                for (int i = 0; i < next.Length; i++)
                {
                    velocity[i] = (beta * velocity[i]) + averagedUpdate[i];
                    next[i] = (float)(model[i] + (eta * velocity[i]));
                }

                break;
            case ServerOptimizerKind.Adam:
                Span<double> m = _first.AsSpan(offset, model.Length);
                Span<double> v = _second.AsSpan(offset, model.Length);
                if (_options.NoiseVariance > 0)
                {
                    AdamBiasCorrected(model, averagedUpdate, next, m, v);
                    break;
                }

                double b1 = _options.Beta1;
                double b2 = _options.Beta2;
                double tau = _options.Tau;
                for (int i = 0; i < next.Length; i++)
                {
                    double g = averagedUpdate[i];
                    m[i] = (b1 * m[i]) + ((1 - b1) * g);
                    v[i] = (b2 * v[i]) + ((1 - b2) * g * g);
                    next[i] = (float)(model[i] + (eta * m[i] / (Math.Sqrt(v[i]) + tau)));
                }

                break;
            default:
                throw new InvalidOperationException($"Unknown server optimizer {_options.Kind}.");
        }

        for (int i = 0; i < next.Length; i++)
        {
            if (!float.IsFinite(next[i]))
            {
                throw new RoundAbortedException(ProtocolStage.Unmasking, string.Create(CultureInfo.InvariantCulture, $"the server optimizer's step is not finite at parameter {offset + i}"));
            }
        }
    }

    /// <summary>Ends the step begun by <see cref="BeginStep"/> once every coordinate went through <see cref="StepRun"/>.</summary>
    public void EndStep()
    {
        _noiseMoment = _stepNoiseMoment;
        Steps++;
    }

    /// <summary>
    /// DP-AdamBC's step: m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ), θ ← θ + η m̂ / (√max(v̂ − Φ, floor Φ) + τ).
    /// </summary>
    private void AdamBiasCorrected(ReadOnlySpan<float> model, ReadOnlySpan<double> averagedUpdate, Span<float> next, Span<double> first, Span<double> second)
    {
        double b1 = _options.Beta1;
        double b2 = _options.Beta2;
        long t = Steps + 1;
        double c1 = 1 - Math.Pow(b1, t);
        double c2 = 1 - Math.Pow(b2, t);
        double phi = _noiseVaries ? _stepNoiseMoment / c2 : _options.NoiseVariance;
        double floor = _options.NoiseFloor * phi;
        double eta = _options.LearningRate;
        double tau = _options.Tau;
        for (int i = 0; i < next.Length; i++)
        {
            double g = averagedUpdate[i];
            first[i] = (b1 * first[i]) + ((1 - b1) * g);
            second[i] = (b2 * second[i]) + ((1 - b2) * g * g);
            double v = Math.Max((second[i] / c2) - phi, floor);
            next[i] = (float)(model[i] + (eta * (first[i] / c1) / (Math.Sqrt(v) + tau)));
        }
    }

    /// <summary>The first moment (momentum buffer) as it is now, without a copy; empty when none is kept yet.</summary>
    public ReadOnlyMemory<double> FirstMoment => _first;

    /// <summary>Adam's second moment as it is now, without a copy; empty when none is kept yet.</summary>
    public ReadOnlyMemory<double> SecondMoment => _second;

    /// <summary>The optimizer's state (first and second moments; null when the kind keeps none or no round ran).</summary>
    public ServerOptimizerState ExportState() =>
        new(Steps, _first is null ? null : (double[])_first.Clone(), _second is null ? null : (double[])_second.Clone());

    /// <summary>
    /// As <see cref="RestoreState"/>, taking the state's arrays as the optimizer's own instead of copying them (the
    /// aggregator restores moments as large as the model; the caller must not use the arrays afterwards).
    /// </summary>
    /// <exception cref="ArgumentException">The state does not fit this optimizer (named in the message).</exception>
    public void AdoptState(ServerOptimizerState state) => RestoreState(state, copy: false);

    /// <summary>Continues from a saved state.</summary>
    /// <exception cref="ArgumentException">The state does not fit this optimizer (named in the message).</exception>
    public void RestoreState(ServerOptimizerState state) => RestoreState(state, copy: true);

    private void RestoreState(ServerOptimizerState state, bool copy)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.First is not null && state.Second is not null && state.First.Length != state.Second.Length)
        {
            throw new ArgumentException($"The saved first moment has {state.First.Length} values and the second {state.Second.Length}.", nameof(state));
        }

        if (_options.Kind == ServerOptimizerKind.Adam && (state.First is null) != (state.Second is null))
        {
            throw new ArgumentException("A saved Adam state needs both moments or neither.", nameof(state));
        }

        Steps = state.Steps;
        _noiseMoment = _noiseVariance * (1 - Math.Pow(_options.Beta2, Steps)); // the past steps' Φ is not saved: taken as the current one
        _first = _options.Kind == ServerOptimizerKind.Average || state.First is null ? null : copy ? (double[])state.First.Clone() : state.First;
        _second = _options.Kind == ServerOptimizerKind.Adam && state.Second is not null ? copy ? (double[])state.Second.Clone() : state.Second : null;
    }
}
