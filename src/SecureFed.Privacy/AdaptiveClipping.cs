namespace SecureFed.Privacy;

/// <summary>
/// Adaptive clipping to a target quantile of update norms (Andrew, Thakkar, McMahan &amp; Ramaswamy, "Differentially
/// Private Learning with Adaptive Clipping", NeurIPS 2021): each round the fraction <c>b</c> of updates whose norm is
/// at most the current clip <c>C</c> is estimated privately (discrete Gaussian noise on the unclipped count), and
/// <c>C &lt;- C * exp(-eta * (b - gamma))</c>. When most updates are clipped (b &lt; gamma) the clip grows; when almost
/// none are (b &gt; gamma) it shrinks. (Flower's implementation reads as sign-inverted relative to this; the direction
/// here is the paper's and is tested.) Not thread-safe.
/// </summary>
public sealed class AdaptiveClipping
{
    /// <summary>Creates the controller.</summary>
    /// <param name="initialClip">C_0 &gt; 0.</param>
    /// <param name="targetQuantile">gamma in (0, 1): the fraction of updates that should end up unclipped.</param>
    /// <param name="learningRate">eta &gt; 0 of the geometric update (the paper uses 0.2).</param>
    /// <param name="countNoiseStddev">sigma_b &gt;= 0: discrete Gaussian noise on the unclipped count (0 disables, not private).</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is outside its domain.</exception>
    public AdaptiveClipping(double initialClip, double targetQuantile, double learningRate, double countNoiseStddev)
    {
        if (!double.IsFinite(initialClip) || initialClip <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(initialClip), initialClip, "The initial clip must be finite and > 0.");
        }

        if (double.IsNaN(targetQuantile) || targetQuantile <= 0 || targetQuantile >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(targetQuantile), targetQuantile, "The target quantile must be in (0, 1).");
        }

        if (!double.IsFinite(learningRate) || learningRate <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be finite and > 0.");
        }

        if (!double.IsFinite(countNoiseStddev) || countNoiseStddev < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(countNoiseStddev), countNoiseStddev, "The count noise must be finite and >= 0.");
        }

        Clip = initialClip;
        TargetQuantile = targetQuantile;
        LearningRate = learningRate;
        CountNoiseStddev = countNoiseStddev;
    }

    /// <summary>The current clip C_t.</summary>
    public double Clip { get; private set; }

    /// <summary>gamma.</summary>
    public double TargetQuantile { get; }

    /// <summary>eta.</summary>
    public double LearningRate { get; }

    /// <summary>sigma_b, in counts.</summary>
    public double CountNoiseStddev { get; }

    /// <summary>
    /// The zCDP cost of releasing one noised count (sensitivity 1): <c>1 / (2 sigma_b^2)</c> (discrete Gaussian,
    /// Canonne et al. 2020); infinite when no noise is added.
    /// </summary>
    public double RhoPerRound => CountNoiseStddev == 0 ? double.PositiveInfinity : 1.0 / (2 * CountNoiseStddev * CountNoiseStddev);

    /// <summary>1 when an update of norm <paramref name="norm"/> is not clipped by the current clip, else 0.</summary>
    public int UnclippedIndicator(double norm) => norm <= Clip ? 1 : 0;

    /// <summary>Applies <c>C &lt;- C * exp(-eta * (b - gamma))</c> with an already-noised fraction b and returns the new clip.</summary>
    /// <exception cref="ArgumentException">b is NaN or infinite.</exception>
    public double Update(double unclippedFraction)
    {
        if (!double.IsFinite(unclippedFraction))
        {
            throw new ArgumentException($"The unclipped fraction must be finite, got {unclippedFraction}.", nameof(unclippedFraction));
        }

        Clip *= Math.Exp(-LearningRate * (unclippedFraction - TargetQuantile));
        return Clip;
    }

    /// <summary>
    /// Noises the unclipped count with <c>N_Z(0, sigma_b^2)</c>, divides by the number of reports and updates the
    /// clip; returns the new clip. (In the federated setting each site can instead add its share of the count
    /// noise before secure aggregation and the aggregator calls <see cref="Update"/>.)
    /// </summary>
    public double UpdateFromCount(long unclippedCount, int reports, DiscreteGaussianSampler sampler)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentOutOfRangeException.ThrowIfLessThan(reports, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(unclippedCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(unclippedCount, reports);
        long noised = unclippedCount + (CountNoiseStddev > 0 ? sampler.Sample(CountNoiseStddev) : 0);
        return Update((double)noised / reports);
    }
}
