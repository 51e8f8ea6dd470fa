using System.Globalization;

namespace SecureFed.Privacy;

/// <summary>Steps of the Poisson-subsampled Gaussian mechanism (DP-SGD).</summary>
public sealed record SubsampledGaussianMechanism : PlannedMechanism
{
    /// <summary>Creates the mechanism.</summary>
    /// <exception cref="ArgumentOutOfRangeException">q outside (0, 1], sigma not &gt; 0 or steps negative.</exception>
    public SubsampledGaussianMechanism(double sampleRate, double noiseMultiplier, long steps)
    {
        RdpAccountant.ValidateSubsampledGaussian(sampleRate, noiseMultiplier, steps);
        SampleRate = sampleRate;
        NoiseMultiplier = noiseMultiplier;
        Steps = steps;
    }

    /// <summary>The sampling rate q.</summary>
    public double SampleRate { get; }

    /// <summary>The noise multiplier sigma.</summary>
    public double NoiseMultiplier { get; }

    /// <summary>The number of steps.</summary>
    public long Steps { get; }

    /// <inheritdoc />
    public override string Describe() => string.Create(
        CultureInfo.InvariantCulture, $"subsampled Gaussian q={SampleRate:G6} sigma={NoiseMultiplier:G6} steps={Steps}");

    internal override void ApplyTo(RdpAccountant accountant) => accountant.AddSubsampledGaussian(SampleRate, NoiseMultiplier, Steps);
}
