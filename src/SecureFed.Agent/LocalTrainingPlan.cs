namespace SecureFed.Agent;

/// <summary>What a round asks of local training.</summary>
/// <param name="Round">Round number.</param>
/// <param name="LocalEpochs">Epochs over the site's data.</param>
/// <param name="NoiseMultiplier">DP-SGD σ.</param>
/// <param name="MaxGradNorm">DP-SGD per-example clip C.</param>
/// <param name="SampleRate">DP-SGD Poisson rate q.</param>
public sealed record LocalTrainingPlan(long Round, int LocalEpochs, double NoiseMultiplier, double MaxGradNorm, double SampleRate)
{
    /// <summary>
    /// Federated evaluation: the announced per-site maximum of every count, or 0 when the round asks for no score of
    /// the received model (or this site opted out). A trainer scores at most as much dev data as keeps every count
    /// within it. <value>The default value is 0.</value>
    /// </summary>
    public int EvaluationCountCap { get; init; }

    /// <summary>Cap of DP-SGD steps in this round (0 = none: <see cref="LocalEpochs"/> × round(1/q)). <value>The default value is 0.</value></summary>
    public int MaxSteps { get; init; }

    /// <summary>
    /// k: the round's patient-level noise is split into k shares (docs/PROTOCOL.md, "Split patient-level noise"); 0 or 1
    /// = not split. <value>The default value is 0.</value>
    /// </summary>
    public int NoiseShares { get; init; }

    /// <summary>
    /// The round's layer-wise DP-SGD preconditioner, one factor per parameter tensor (docs/PROTOCOL.md, "Layer scales");
    /// empty = none. <value>The default value is empty.</value>
    /// </summary>
    public IReadOnlyList<float> LayerScales { get; init; } = [];

    /// <summary>
    /// The DP-SGD steps this plan takes: <see cref="LocalEpochs"/> × round(1/q), at most <see cref="MaxSteps"/> when set
    /// (<see cref="Tagger.DpSgdOptions.StepsPerRound"/>).
    /// </summary>
    public long Steps => Tagger.DpSgdOptions.StepsPerRound(LocalEpochs, SampleRate, MaxSteps);

    /// <summary>The noise multiplier this site adds itself: σ, or σ/√k when the noise is split into k ≥ 2 shares.</summary>
    public double SiteNoiseMultiplier => NoiseShares >= 2 ? NoiseMultiplier / Math.Sqrt(NoiseShares) : NoiseMultiplier;
}
