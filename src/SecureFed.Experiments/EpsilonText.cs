using System.Globalization;

namespace SecureFed.Experiments;

/// <summary>
/// ε as the terminal, the tables, file names and chart legends show it: two decimals from 1 up (8, 2.5, 1.25), three
/// significant digits below 1 (0.5, 0.125, 1e-06), so that a small ε is never shown as 0.
/// </summary>
public static class EpsilonText
{
    /// <summary>The smallest ε the experiment, the privacy audit and the demo accept.</summary>
    /// <remarks>
    /// Below it the DP-SGD noise (σ grows like 1/ε) drowns every gradient, and such a value is more likely a δ typed as ε
    /// (δ is 1e-5) than a wish; 0.01 still shows the mechanism at work.
    /// </remarks>
    public const double Minimum = 0.01;

    /// <summary>The largest ε the experiment, the privacy audit and the demo accept.</summary>
    /// <remarks>
    /// Above it the noise is nil for any run these commands make (ε = 100,000 already calibrates σ ≈ 0.03 over 200 steps,
    /// docs/utility.md), such an ε protects no one, and a larger one printed in full made the file names of the arm's model
    /// too long to write, which failed the experiment after its training. The experiment and the privacy audit train an arm
    /// without DP beside the DP arms.
    /// </remarks>
    public const double Maximum = 1e6;

    /// <summary>Formats <paramref name="epsilon"/> (invariant culture).</summary>
    /// <param name="epsilon">ε.</param>
    /// <returns>"8", "2.5", "0.125", "1e-06".</returns>
    public static string Format(double epsilon) =>
        epsilon >= 1 || epsilon <= 0 || !double.IsFinite(epsilon)
            ? epsilon.ToString("0.##", CultureInfo.InvariantCulture)
            : epsilon.ToString("G3", CultureInfo.InvariantCulture).ToLowerInvariant();

    /// <summary>Why <paramref name="epsilon"/> is refused as a target (not finite, not positive, below <see cref="Minimum"/> or above <see cref="Maximum"/>), or null.</summary>
    /// <param name="option">The option it came from, e.g. "--epsilon".</param>
    /// <param name="epsilon">ε.</param>
    /// <param name="delta">δ of the run, named in the message.</param>
    /// <returns>A message naming the value and the limit; or null.</returns>
    public static string? Problem(string option, double epsilon, double delta)
    {
        if (!(epsilon > 0) || double.IsInfinity(epsilon))
        {
            return $"{option} values must be finite and > 0; got {epsilon.ToString(CultureInfo.InvariantCulture)}.";
        }

        if (epsilon > Maximum)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{option} {epsilon.ToString("R", CultureInfo.InvariantCulture).ToLowerInvariant()} is above the maximum ε of {Maximum:0}: the DP-SGD noise would be nil and such an ε protects no one. ε is the privacy loss (typically 1 to 10); for a model without DP, experiment and privacy audit train an arm without DP beside the DP arms.");
        }

        return epsilon < Minimum
            ? string.Create(CultureInfo.InvariantCulture, $"{option} {epsilon.ToString("R", CultureInfo.InvariantCulture).ToLowerInvariant()} is below the minimum ε of {Minimum}: the DP-SGD noise would drown every gradient and the model would learn nothing. ε is the privacy loss (typically 1 to 10); δ = {delta:G2} is set apart.")
            : null;
    }
}
