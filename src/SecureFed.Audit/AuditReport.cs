using SecureFed.Audit.Internal;

namespace SecureFed.Audit;

/// <summary>
/// Writes a self-contained HTML report (inline CSS and SVG; no script, no external resource) over one or more audit
/// logs. It opens with what an auditor acts on: a verdict (logs intact, rounds completed and aborted, dropouts,
/// cross-check discrepancies, ε over budget — failures named in words), each site's patient-level ε against its
/// budget over the rounds (chart), and who took part in each round; then the details: log verification, rounds,
/// parameters with units, ε per round, messages per site folded by round, the masked-input cross-check, and
/// refusals. Every number cites the log line it comes from. Agents' logs are matched to sites by actor, so agents
/// must log under the site id the aggregator uses.
/// </summary>
public static class AuditReport
{
    /// <summary>Verifies each log directory and writes the report to <paramref name="outputHtmlPath"/>.</summary>
    /// <returns>The verdict and counts, as in <see cref="Create"/>.</returns>
    /// <param name="directories">Log directories (aggregator and agents).</param>
    /// <param name="outputHtmlPath">The HTML file to write.</param>
    /// <param name="privacyAuditPath">Optional privacy-audit.json of <c>securefed privacy audit</c>, shown beside the ledger's ε.</param>
    /// <param name="verifierKeys">Optional pins, as in <see cref="Create"/>.</param>
    /// <param name="previousCheckpoints">Optional kept checkpoints, as in <see cref="Create"/>.</param>
    public static AuditReportResult Write(IReadOnlyList<string> directories, string outputHtmlPath, string? privacyAuditPath = null,
        IReadOnlyList<string?>? verifierKeys = null, IReadOnlyList<string?>? previousCheckpoints = null)
    {
        ArgumentNullException.ThrowIfNull(directories);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputHtmlPath);
        AuditReportResult result = Create(directories, privacyAuditPath, verifierKeys, previousCheckpoints);
        string? folder = Path.GetDirectoryName(Path.GetFullPath(outputHtmlPath));
        if (folder is not null)
        {
            Directory.CreateDirectory(folder);
        }

        DurableFile.WriteAllText(outputHtmlPath, result.Html);
        return result;
    }

    /// <summary>
    /// Reads <paramref name="privacyAuditPath"/> as <see cref="Create"/> would, so that a caller can refuse a wrong file
    /// (say the results.json of 'securefed experiment') before any log is verified.
    /// </summary>
    /// <param name="privacyAuditPath">privacy-audit.json of <c>securefed privacy audit</c>.</param>
    /// <exception cref="InvalidDataException">The file is not a privacy-audit result; the message names the file and what was expected.</exception>
    public static void CheckPrivacyAudit(string privacyAuditPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(privacyAuditPath);
        _ = PrivacyAuditSection.Read(privacyAuditPath);
    }

    /// <summary>Verifies each log directory and renders the report without writing it.</summary>
    /// <exception cref="ArgumentException">No directory was given.</exception>
    /// <param name="directories">Log directories.</param>
    /// <param name="privacyAuditPath">Optional privacy-audit.json of <c>securefed privacy audit</c>, shown beside the ledger's ε.</param>
    /// <param name="verifierKeys">
    /// Null, or one key per directory in the same order (null leaves that log unpinned), as <see cref="AuditVerifier.Verify"/>
    /// takes it. An unpinned log is checked against its own verifier.key, and the verdict says "keys not pinned".
    /// </param>
    /// <param name="previousCheckpoints">Null, or one checkpoint file the auditor kept per directory (null where none): rollback detection.</param>
    /// <exception cref="InvalidDataException">The privacy-audit file is not a privacy-audit result.</exception>
    /// <exception cref="FormatException">A key is not a key.</exception>
    public static AuditReportResult Create(IReadOnlyList<string> directories, string? privacyAuditPath = null,
        IReadOnlyList<string?>? verifierKeys = null, IReadOnlyList<string?>? previousCheckpoints = null)
    {
        ArgumentNullException.ThrowIfNull(directories);
        if (directories.Count == 0)
        {
            throw new ArgumentException("At least one log directory is needed.", nameof(directories));
        }

        AuditFindings findings = AuditFindings.Compute(directories, verifierKeys, previousCheckpoints);
        PrivacyAuditSection? privacyAudit = privacyAuditPath is null ? null : PrivacyAuditSection.Read(privacyAuditPath);
        return new AuditReportResult(ReportHtml.Render(findings, privacyAudit), findings.Logs.Count, findings.FailedLogs, findings.CrossCheckMismatches)
        {
            Passed = findings.Passed,
            Verdict = findings.Headline,
            Problems = findings.Problems,
            Warnings = findings.Warnings,
            Notes = findings.Notes,
            UnverifiedLines = findings.UnverifiedLines,
            RoundsCompleted = findings.RoundsCompleted,
            RoundsAborted = findings.RoundsAborted,
            Dropouts = findings.Dropouts,
            SitesOverBudget = findings.SitesOverBudget,
        };
    }
}
