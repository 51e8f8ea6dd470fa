namespace SecureFed.PrivacyAudit;

/// <summary>The audit of one arm's fused model.</summary>
/// <param name="Arm">Display name.</param>
/// <param name="Epsilon">Target patient-level ε (null: no DP).</param>
/// <param name="EpsilonSpent">ε the accountant gives for the DP-SGD steps taken (null: no DP).</param>
/// <param name="TestF1">conlleval F1 of the fused model on the held-out test set (utility, for context).</param>
/// <param name="Exposures">Exposure in bits of each secret canary, ranked by log p under the fused model (sampled rank; capped at log₂(n + 1)).</param>
/// <param name="CalibratedExposures">Exposure of each secret canary ranked by the reference-calibrated score, for comparison.</param>
/// <param name="ExtrapolatedExposures">Exposure of each secret canary by a normal fit of the candidates' scores.</param>
/// <param name="ControlExposures">Exposure of each control canary (drawn like the secret ones, never inserted): the chance level under this model.</param>
/// <param name="CalibratedControlExposures">The control canaries' exposure by the calibrated score.</param>
/// <param name="ExposureCap">log₂(n + 1), the largest exposure the sampled rank can show.</param>
/// <param name="MiaAuc">AUC of the calibrated attack (log p under the fused model minus log p under the reference model) on site-1's natural sentences, members vs held-out (null if a side is empty).</param>
/// <param name="MiaTprAt1PctFpr">Its true-positive rate at 1 % false positives.</param>
/// <param name="MiaAucUncalibrated">AUC of the plain loss attack (log p under the fused model alone) on the same sentences, for comparison.</param>
/// <param name="CanaryMiaAuc">AUC of the calibrated attack on the audit canaries, in vs out.</param>
/// <param name="CanaryAudit">The one-run audit on the audit canaries, inserted once: the reported empirical ε lower bound, per sentence.</param>
/// <param name="NaturalAudit">The one-run audit on the natural audit sentences (a second, separate per-sentence bound).</param>
/// <param name="GroupAudit">The one-run audit on the group canaries (a bound for a group of r sentences, next to the group-privacy ε).</param>
/// <param name="GroupMiaAuc">AUC of the calibrated attack on the group canaries, in vs out.</param>
/// <param name="Roc">ROC curve of the calibrated natural-sentence attack.</param>
/// <param name="WallSeconds">Wall time of training and auditing the arm.</param>
public sealed record PrivacyAuditArm(
    string Arm,
    double? Epsilon,
    double? EpsilonSpent,
    double TestF1,
    IReadOnlyList<double> Exposures,
    IReadOnlyList<double> CalibratedExposures,
    IReadOnlyList<double> ExtrapolatedExposures,
    IReadOnlyList<double> ControlExposures,
    IReadOnlyList<double> CalibratedControlExposures,
    double ExposureCap,
    double? MiaAuc,
    double? MiaTprAt1PctFpr,
    double? MiaAucUncalibrated,
    double? CanaryMiaAuc,
    OneRunAuditResult? CanaryAudit,
    OneRunAuditResult? NaturalAudit,
    GroupAuditResult? GroupAudit,
    double? GroupMiaAuc,
    IReadOnlyList<(double FalsePositiveRate, double TruePositiveRate)> Roc,
    double WallSeconds)
{
    /// <summary>Mean exposure of the secret canaries (null without canaries).</summary>
    public double? ExposureMean => Exposures.Count == 0 ? null : Exposures.Average();

    /// <summary>Mean exposure of the control canaries (null without canaries).</summary>
    public double? ControlExposureMean => ControlExposures.Count == 0 ? null : ControlExposures.Average();

    /// <summary>The empirical ε lower bound reported for the arm: the canary audit's.</summary>
    public double? EmpiricalEpsilonLowerBound => CanaryAudit?.EpsilonLowerBound;

    /// <summary>
    /// True when an empirical bound exceeds what DP claims for its unit: a per-sentence bound above the accountant's ε,
    /// or the group bound above the group-privacy ε for r. A DP bug (or a broken audit) to find.
    /// </summary>
    public bool BoundExceedsClaim => EpsilonSpent is double claimed
        && ((CanaryAudit?.EpsilonLowerBound ?? 0) > claimed || (NaturalAudit?.EpsilonLowerBound ?? 0) > claimed
            || (GroupAudit is { ClaimedEpsilon: double group } && GroupAudit.Audit.EpsilonLowerBound > group));
}
