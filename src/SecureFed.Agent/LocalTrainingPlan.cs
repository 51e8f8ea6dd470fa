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
}
