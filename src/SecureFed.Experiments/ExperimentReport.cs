namespace SecureFed.Experiments;

/// <summary>Everything one <c>securefed experiment</c> run measured, as written to results.json.</summary>
/// <param name="Configuration">The settings (as stated on the command line and derived).</param>
/// <param name="Data">What was split how (first seed; the split is re-drawn per seed for iid and skewed).</param>
/// <param name="Sites">Per site: name, source, entity types.</param>
/// <param name="Results">Every arm and seed.</param>
/// <param name="Summaries">Every arm over the seeds.</param>
/// <param name="Machine">Processors, load average at start and end, start and end time (UTC).</param>
public sealed record ExperimentReport(
    IReadOnlyDictionary<string, object> Configuration,
    string Data,
    IReadOnlyList<SiteData> Sites,
    IReadOnlyList<ArmResult> Results,
    IReadOnlyList<ArmSummary> Summaries,
    IReadOnlyDictionary<string, string> Machine)
{
    /// <summary>
    /// Whether every arm of the run was measured. results.json is rewritten after every arm, so a run that was stopped
    /// (Ctrl-C, a crash, a killed process) or is still running leaves one that says <c>"complete": false</c>.
    /// </summary>
    public bool Complete { get; init; }

    /// <summary>Path of results.json.</summary>
    public string? JsonPath { get; init; }

    /// <summary>Path of the PNG.</summary>
    public string? ChartPath { get; init; }
}
