namespace SecureFed.Agent;

/// <summary>What a round asks of local training.</summary>
/// <param name="Round">Round number.</param>
/// <param name="LocalEpochs">Epochs over the site's data.</param>
/// <param name="NoiseMultiplier">DP-SGD σ.</param>
/// <param name="MaxGradNorm">DP-SGD per-example clip C.</param>
/// <param name="SampleRate">DP-SGD Poisson rate q.</param>
public sealed record LocalTrainingPlan(long Round, int LocalEpochs, double NoiseMultiplier, double MaxGradNorm, double SampleRate);
