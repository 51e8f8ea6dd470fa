namespace SecureFed.PrivacyAudit;

/// <summary>The one-run audit on canaries each inserted r times (with probability ½): a bound for a group of r sentences.</summary>
/// <param name="GroupSize">r, copies of each included group canary.</param>
/// <param name="Audit">The audit; its bound is for the group, computed at <paramref name="ClaimedDelta"/> when there is a claim, else at the run's δ.</param>
/// <param name="ClaimedEpsilon">The group-privacy ε the accountant's (ε, δ) implies for r (<see cref="GroupPrivacy.Of"/>); null without DP or when vacuous.</param>
/// <param name="ClaimedDelta">Its δ (r·e^{(r−1)ε}·δ); null without a claim.</param>
/// <param name="Vacuous">True when DP was on but the group guarantee says nothing for r (its δ ≥ 1).</param>
public sealed record GroupAuditResult(int GroupSize, OneRunAuditResult Audit, double? ClaimedEpsilon, double? ClaimedDelta, bool Vacuous);
