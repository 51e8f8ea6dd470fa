namespace SecureFed.PrivacyAudit;

/// <summary>A privacy-audit run: what was trained on what, and the audit of every arm.</summary>
/// <param name="Data">One line saying what was split how.</param>
/// <param name="Configuration">The recipe and the audit's populations.</param>
/// <param name="Arms">The arms, in the order they ran.</param>
/// <param name="Started">When the run started.</param>
/// <param name="Written">When this report was written.</param>
public sealed record PrivacyAuditReport(string Data, IReadOnlyDictionary<string, object> Configuration, IReadOnlyList<PrivacyAuditArm> Arms, DateTimeOffset Started, DateTimeOffset Written)
{
    /// <summary>privacy-audit.json.</summary>
    public string? JsonPath { get; init; }

    /// <summary>The ROC PNG.</summary>
    public string? RocChartPath { get; init; }

    /// <summary>The exposure PNG.</summary>
    public string? ExposureChartPath { get; init; }
}
