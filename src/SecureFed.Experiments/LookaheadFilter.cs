namespace SecureFed.Experiments;

/// <summary>
/// A simplified Kalman filter on the aggregated update, with the sites training from an extrapolated model: DiSK
/// (Zhang, Bu, Hong and Razaviyayn, "DiSK: Differentially Private Optimizer with Simplified Kalman Filter for Noise
/// Reduction", 2024) in its one-evaluation form. DiSK evaluates each example's gradient as
/// a·∇f(x_t + γ(x_t − x_{t−1})) + (1 − a)·∇f(x_t) with a = (1 − κ) / (κγ), clips it, adds the noise, and filters
/// g_t = (1 − κ)·g_{t−1} + κ·ĝ_t. With γ = (1 − κ) / κ the weight a is 1, so one gradient at the extrapolated point
/// suffices: the sites train from z_t = x_t + γ(x_t − x_{t−1}) exactly as they would from x_t (same clipping, same
/// noise, same accounting), and the server filters the averaged update before its update rule. The extrapolation
/// compensates, to first order, the lag the filter puts on the signal, while the filter keeps κ / (2 − κ) of the
/// noise's variance. Both steps use only what the aggregator already holds (past global models and the decoded
/// sum): post-processing, no privacy cost.
/// </summary>
internal sealed class LookaheadFilter
{
    private readonly double _kappa;
    private double[]? _state;
    private float[]? _previous;

    /// <param name="kappa">κ in (0, 1]: the weight of this round's update (1 = no filtering, no extrapolation).</param>
    public LookaheadFilter(double kappa)
    {
        if (!(kappa > 0 && kappa <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(kappa), kappa, "κ must be in (0, 1].");
        }

        _kappa = kappa;
    }

    /// <summary>γ = (1 − κ) / κ: how far past x_t, in units of the last step, the sites' starting point lies.</summary>
    public double Gamma => (1 - _kappa) / _kappa;

    /// <summary>
    /// The model the sites train from in the round that starts at <paramref name="global"/>: x_t + γ(x_t − x_{t−1}),
    /// or x_t itself in the first round (no step yet). Remembers x_t for the next round.
    /// </summary>
    public float[] TrainingPoint(float[] global)
    {
        ArgumentNullException.ThrowIfNull(global);
        float[]? previous = _previous;
        _previous = (float[])global.Clone();
        if (previous is null || Gamma == 0)
        {
            return _previous;
        }

        if (previous.Length != global.Length)
        {
            throw new ArgumentException($"The model has {global.Length} parameters; the previous round's had {previous.Length}.", nameof(global));
        }

        float gamma = (float)Gamma;
        var point = new float[global.Length];
        for (int j = 0; j < point.Length; j++)
        {
            point[j] = global[j] + (gamma * (global[j] - previous[j]));
        }

        return point;
    }

    /// <summary>
    /// g_t = (1 − κ)·g_{t−1} + κ·<paramref name="update"/>, in place; the first round's update passes unchanged
    /// (g_0 = ĝ_0, so the first step is not shrunk by κ).
    /// </summary>
    public void Filter(double[] update)
    {
        ArgumentNullException.ThrowIfNull(update);
        if (_state is null)
        {
            _state = (double[])update.Clone();
            return;
        }

        if (_state.Length != update.Length)
        {
            throw new ArgumentException($"The update has {update.Length} coordinates; the filter's state has {_state.Length}.", nameof(update));
        }

        for (int j = 0; j < update.Length; j++)
        {
            _state[j] = ((1 - _kappa) * _state[j]) + (_kappa * update[j]);
            update[j] = _state[j];
        }
    }
}
