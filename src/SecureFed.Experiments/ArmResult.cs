namespace SecureFed.Experiments;

/// <summary>One arm trained with one seed, scored on the held-out test set.</summary>
/// <param name="Arm">Display name (e.g. "site-1 alone", "federated + DP-SGD ε=8").</param>
/// <param name="Kind">site_alone, pooled, federated, federated_dp, federated_distributed_dp, federated_dp_site_dp, public_warm_start, saved_teacher (--distill-teacher) or self_trained_student.</param>
/// <param name="Seed">The seed.</param>
/// <param name="Epsilon">Patient-level ε (DP arms), else null.</param>
/// <param name="TestF1">conlleval F1 on the test set, in [0, 1].</param>
/// <param name="TestF1PerType">conlleval F1 per entity type on the test set.</param>
/// <param name="DevF1PerRound">Dev F1 after each round (chunk of local epochs).</param>
/// <param name="WallSeconds">Wall time of the arm (training, secure aggregation, per-round dev scoring).</param>
public sealed record ArmResult(string Arm, string Kind, int Seed, double? Epsilon, double TestF1, IReadOnlyDictionary<string, double> TestF1PerType, IReadOnlyList<double> DevF1PerRound, double WallSeconds)
{
    /// <summary>DP-SGD noise multiplier σ (DP arms).</summary>
    public double? NoiseMultiplier { get; init; }

    /// <summary>DP-SGD steps per site over the whole run (DP arms).</summary>
    public long? DpStepsPerSite { get; init; }

    /// <summary>ε actually spent per site according to the accountant, from the steps taken (DP arms).</summary>
    public double? EpsilonSpent { get; init; }

    /// <summary>The patient-level noise was split across the sites (<see cref="ExperimentOptions.DpDistributedNoise"/>); <see cref="NoiseMultiplier"/> is then the sum's σ.</summary>
    public bool DistributedNoise { get; init; }

    /// <summary>
    /// Distributed noise only: the patient-level ε if the aggregator and every other site collude, leaving only the
    /// site's own share of the noise (σ / √n); null otherwise.
    /// </summary>
    public double? CollusionEpsilon { get; init; }

    /// <summary>Site-level distributed-DP noise multiplier z (0 = none).</summary>
    public double SiteNoiseMultiplier { get; init; }

    /// <summary>
    /// Federated arms: the federated-evaluation F1 of the model each round started from, decoded from the secure sum of
    /// the sites' counts on their own dev shards (null where the score was withheld); null for other arms.
    /// </summary>
    public IReadOnlyList<double?>? FederatedEvaluationF1PerRound { get; init; }

    /// <summary>Adaptive clipping (<see cref="ExperimentOptions.AdaptiveClipQuantile"/>): the clip C each round used; null with a fixed clip.</summary>
    public IReadOnlyList<double>? ClipPerRound { get; init; }

    /// <summary>Adaptive clipping: the noised unclipped fraction b̃ released after each round (it set the next round's C); null with a fixed clip.</summary>
    public IReadOnlyList<double>? UnclippedFractionPerRound { get; init; }

    /// <summary>Adaptive clipping: σ_Δ, the noise multiplier of the clipped sum (the sum's with distributed noise), raised from <see cref="NoiseMultiplier"/> so the sum and the count together are σ; null with a fixed clip.</summary>
    public double? GradientNoiseMultiplier { get; init; }

    /// <summary>Adaptive clipping: σ_b, the noise on the unclipped count (the sum's with distributed noise); null with a fixed clip.</summary>
    public double? ClipCountNoise { get; init; }

    /// <summary>
    /// Self-trained students (<see cref="ExperimentOptions.DistillTextDirectories"/>): the teacher's and the student's
    /// dev and test F1 (<see cref="TestF1"/> is then the chosen student's, <see cref="DevF1PerRound"/> its dev F1 per
    /// epoch); null for other arms.
    /// </summary>
    public DistillationResult? Distillation { get; init; }
}
