namespace SecureFed.Audit;

/// <summary>What <see cref="AuditReport.Create"/> produced.</summary>
/// <param name="Html">The self-contained HTML document.</param>
/// <param name="Logs">Number of logs in the report.</param>
/// <param name="FailedLogs">Logs that failed verification.</param>
/// <param name="CrossCheckMismatches">Masked-input records without a matching counterpart.</param>
public sealed record AuditReportResult(string Html, int Logs, int FailedLogs, int CrossCheckMismatches);
