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
}
