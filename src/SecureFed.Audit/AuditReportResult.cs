namespace SecureFed.Audit;

/// <summary>What <see cref="AuditReport.Create"/> produced.</summary>
/// <param name="Html">The self-contained HTML document.</param>
/// <param name="Logs">Number of logs in the report.</param>
/// <param name="FailedLogs">Logs that failed verification.</param>
/// <param name="CrossCheckMismatches">Masked-input records without a matching counterpart.</param>
public sealed record AuditReportResult(string Html, int Logs, int FailedLogs, int CrossCheckMismatches)
{
    /// <summary>Whether the audit passed: every log intact, no cross-check discrepancy, no ε over a logged budget.</summary>
    public bool Passed { get; init; }

    /// <summary>The verdict in one sentence, as the report's first line states it ("PASSED: …" or "FAILED: …").</summary>
    public string Verdict { get; init; } = string.Empty;

    /// <summary>Every finding that fails the audit, as a sentence naming the log (and line) concerned.</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    /// <summary>
    /// Findings that do not fail the audit but need an auditor's judgement (lines after the newest signed checkpoint, left
    /// out of every figure; a budget changed between restarts; a round opened twice), as sentences naming the log and line.
    /// </summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>
    /// Findings worth knowing that neither fail the audit nor need judgement (a masked input a site logged sending that
    /// never reached the aggregator, a site whose log was not given), as sentences naming the log and line.
    /// </summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>Well-formed lines after the newest signed checkpoint of their log: no signature covers them, no figure counts them.</summary>
    public int UnverifiedLines { get; init; }

    /// <summary>Rounds the aggregator logged as completed.</summary>
    public int RoundsCompleted { get; init; }

    /// <summary>Rounds the aggregator logged as aborted.</summary>
    public int RoundsAborted { get; init; }

    /// <summary>Site dropouts the aggregator logged (one per site and round).</summary>
    public int Dropouts { get; init; }

    /// <summary>Sites whose patient-level ε exceeded the budget they logged.</summary>
    public IReadOnlyList<string> SitesOverBudget { get; init; } = [];
}
