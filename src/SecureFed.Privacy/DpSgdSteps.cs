using System.Globalization;

namespace SecureFed.Privacy;

/// <summary>
/// The DP-SGD steps a round's plan takes (local epochs × round(1/q), capped), and when that plan is implausible: one rule
/// for the planners (the demo's options, the experiment's), the aggregator's start-up check of its settings and the
/// agent's check of a round's announcement, so that the aggregator never announces a plan its agents decline.
/// </summary>
public static class DpSgdSteps
{
    /// <summary>
    /// The most DP-SGD steps a site may plan for one round (one training call): local epochs × round(1/q). Each step
    /// samples q·N examples on average, so at more steps than any site has examples most steps train on nothing but
    /// noise, and the batches of an epoch (sampled up front) no longer fit in memory (q = 1e-10 crashed the demo's agents).
    /// </summary>
    public const int MaxPerRound = 1_000_000;

    /// <summary>DP-SGD steps per local epoch at sample rate <paramref name="sampleRate"/>: round(1/q), at least 1 (as a double: 1/q may exceed any integer).</summary>
    /// <param name="sampleRate">q in (0, 1].</param>
    /// <returns>round(1/q).</returns>
    public static double PerEpoch(double sampleRate) => Math.Max(1, Math.Round(1.0 / sampleRate));

    /// <summary>
    /// Why a DP-SGD plan of <paramref name="localEpochs"/> epochs at sample rate <paramref name="sampleRate"/> is
    /// implausible (more than <see cref="MaxPerRound"/> steps per round or per epoch), or null when it is not.
    /// </summary>
    /// <param name="sampleRate">q in (0, 1].</param>
    /// <param name="localEpochs">Local epochs per round.</param>
    /// <param name="stepsCap">Cap on the steps per round (0 = none); the batches of a whole epoch are sampled all the same.</param>
    /// <returns>A message naming q, the steps it gives and the limit; or null.</returns>
    public static string? Problem(double sampleRate, int localEpochs, int stepsCap = 0)
    {
        double perEpoch = PerEpoch(sampleRate);
        double perRound = Math.Max(1, localEpochs) * perEpoch;
        if (stepsCap > 0)
        {
            perRound = Math.Max(perEpoch, Math.Min(perRound, stepsCap));
        }

        if (perRound <= MaxPerRound)
        {
            return null;
        }

        int epochCount = perRound > perEpoch ? Math.Max(1, localEpochs) : 1;
        string epochs = epochCount > 1 ? string.Create(CultureInfo.InvariantCulture, $"{epochCount} local epochs × ") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"sample rate q = {sampleRate:G4} plans {perRound:N0} DP-SGD steps per round ({epochs}round(1/q) = {perEpoch:N0} per epoch, each sampled up front); " +
            $"at most {MaxPerRound:N0} are allowed. Each step samples q × (a site's sentences) on average, so with q below 1/N most steps see no example at all: " +
            $"use q >= {epochCount / (double)MaxPerRound:G3} here (the documented recipes use 0.02 to 0.5; q = 0.001 takes 1,000 steps per epoch).");
    }
}
