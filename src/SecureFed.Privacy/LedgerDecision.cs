namespace SecureFed.Privacy;

/// <summary>The answer of <see cref="PrivacyLedger.Check(Guarantee, PlannedMechanism, double, double)"/>.</summary>
/// <param name="Allowed">True when the planned mechanism keeps epsilon within the budget.</param>
/// <param name="EpsilonBefore">Epsilon spent so far.</param>
/// <param name="EpsilonAfter">Epsilon if the planned mechanism runs.</param>
/// <param name="Reason">A human sentence, e.g. "record-level epsilon would reach 8.41 &gt; budget 8.00 (delta 1e-05) after round 12".</param>
public readonly record struct LedgerDecision(bool Allowed, double EpsilonBefore, double EpsilonAfter, string Reason);
