namespace SecureFed.Agent;

/// <summary>What one site did in one round (for progress displays and the demo's table).</summary>
public sealed record AgentRoundReport(
    string Site,
    long Round,
    bool Completed,
    string Outcome,
    double Loss,
    double GlobalDevF1,
    double RecordEpsilon,
    double SiteEpsilon,
    long BytesSent,
    long ModelVersion)
{
    /// <summary>L2 norm of the local update before clipping (NaN when no update was computed).</summary>
    public double UpdateNorm { get; init; } = double.NaN;

    /// <summary>
    /// Record-level ε if the aggregator and all other sites collude (<see cref="Privacy.Guarantee.RecordCollusion"/>):
    /// larger than <see cref="RecordEpsilon"/> once the site took part in a round with split patient-level noise.
    /// </summary>
    public double CollusionEpsilon { get; init; } = double.NaN;

    /// <summary>
    /// True when the site declined the round because one of its privacy budgets would be exceeded: it will decline every
    /// later round with the same settings too (its ledger only grows).
    /// </summary>
    public bool BudgetSpent { get; init; }
}
