namespace SecureFed.Privacy;

/// <summary>One accounted mechanism in a <see cref="PrivacyLedger"/>.</summary>
/// <param name="Round">The federated round (&gt;= 0).</param>
/// <param name="Guarantee">The guarantee the mechanism is charged to.</param>
/// <param name="Mechanism">What ran.</param>
/// <param name="EpsilonAfter">The guarantee's total epsilon at <paramref name="Delta"/> after this entry (improved conversion, Opacus orders).</param>
/// <param name="Delta">The delta of <paramref name="EpsilonAfter"/>.</param>
/// <param name="Timestamp">When it was recorded (UTC, from the ledger's <see cref="TimeProvider"/>).</param>
public sealed record LedgerEntry(
    long Round,
    Guarantee Guarantee,
    PlannedMechanism Mechanism,
    double EpsilonAfter,
    double Delta,
    DateTimeOffset Timestamp);
