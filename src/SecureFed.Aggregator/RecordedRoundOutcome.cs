using SecureFed.Wire.V1;

namespace SecureFed.Aggregator;

/// <summary>
/// An attempt's outcome read back from the round store (<see cref="RoundCoordinator.RecordedOutcomeAsync"/>), with the
/// attempt's cohort, against which the caller is checked as for a live attempt.
/// </summary>
/// <param name="Outcome">What <c>AwaitRoundOutcome</c> answers.</param>
/// <param name="Cohort">The attempt's cohort, in announcement order.</param>
internal sealed record RecordedRoundOutcome(RoundOutcome Outcome, IReadOnlyList<string> Cohort);
