namespace SecureFed.Privacy;

/// <summary>
/// A privacy mechanism a round will run (or ran): either <see cref="SubsampledGaussianMechanism"/> (DP-SGD steps)
/// or <see cref="ZcdpMechanism"/> (e.g. one distributed discrete Gaussian aggregation).
/// </summary>
public abstract record PlannedMechanism
{
    private protected PlannedMechanism()
    {
    }

    /// <summary><paramref name="steps"/> steps of the Poisson-subsampled Gaussian with rate q and noise multiplier sigma.</summary>
    public static SubsampledGaussianMechanism SubsampledGaussian(double sampleRate, double noiseMultiplier, long steps) =>
        new(sampleRate, noiseMultiplier, steps);

    /// <summary>A rho-zCDP release.</summary>
    public static ZcdpMechanism Zcdp(double rho) => new(rho);

    /// <summary>A short human-readable description for logs and audit output.</summary>
    public abstract string Describe();

    internal abstract void ApplyTo(RdpAccountant accountant);
}
