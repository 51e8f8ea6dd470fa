using System.Globalization;

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

    /// <summary>
    /// The noise multiplier σ_Δ of the clipped sum when the same step also releases the centred unclipped count
    /// Σ (b_i − ½) with Gaussian noise of standard deviation σ_b (sensitivity ½): the pair is one Gaussian mechanism of
    /// noise multiplier σ when σ_Δ⁻² + (2σ_b)⁻² = σ⁻² (Andrew et al. 2021, §3), i.e. σ_Δ = (σ⁻² − (2σ_b)⁻²)^(−1/2). The
    /// accountant's σ for the target ε then still holds for the pair, so the count costs no extra ε, only a slightly
    /// larger σ_Δ.
    /// </summary>
    /// <param name="noiseMultiplier">σ &gt; 0, the noise multiplier the accountant calibrated for the target ε.</param>
    /// <param name="countNoiseStddev">σ_b, the count noise in counts; must exceed σ / 2.</param>
    /// <returns>σ_Δ ≥ σ.</returns>
    /// <exception cref="ArgumentOutOfRangeException">σ is not positive and finite, or σ_b ≤ σ / 2 (no σ_Δ exists).</exception>
    public static double GradientNoiseMultiplier(double noiseMultiplier, double countNoiseStddev)
    {
        if (!double.IsFinite(noiseMultiplier) || noiseMultiplier <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(noiseMultiplier), noiseMultiplier, "The noise multiplier must be finite and > 0.");
        }

        if (!(countNoiseStddev > noiseMultiplier / 2) || double.IsInfinity(countNoiseStddev))
        {
            throw new ArgumentOutOfRangeException(nameof(countNoiseStddev), countNoiseStddev,
                string.Create(CultureInfo.InvariantCulture, $"The count noise σ_b must be finite and exceed σ / 2 = {noiseMultiplier / 2:G4}: with σ_b ≤ σ / 2 the count alone spends the whole budget."));
        }

        double inverseSquare = (1 / (noiseMultiplier * noiseMultiplier)) - (1 / (4 * countNoiseStddev * countNoiseStddev));
        return 1 / Math.Sqrt(inverseSquare);
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
