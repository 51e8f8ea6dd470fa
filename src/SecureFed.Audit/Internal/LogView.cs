using System.Globalization;
using System.Text.Json;

namespace SecureFed.Audit.Internal;

/// <summary>
/// One verified log as the report sees it. Of a log that verifies, only lines its newest signed checkpoint covers are
/// <see cref="Entries"/>: lines after it (which anyone with write access could append without the key) are kept apart as
/// <see cref="Unverified"/> and count in no figure. A log that failed verification fails the audit, and is shown whole.
/// </summary>
internal sealed class LogView
{
    public LogView(string directory, AuditVerification verification, IReadOnlyList<LogEntry> entries, bool pinned = false)
    {
        Directory = directory;
        Verification = verification;
        // A log that failed verification is shown whole under its FAILED verdict ("nothing it logged can be trusted").
        long covered = verification.Ok ? verification.CoveredLines : long.MaxValue;
        Entries = [.. entries.Where(e => e.Line <= covered)];
        Unverified = [.. entries.Where(e => e.Line > covered)];
        Pinned = pinned;
        Actor = verification.Actor ?? Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
        bool aggregator = entries.Any(e => e.Type is AuditEvents.RoundOpened or AuditEvents.MaskedInputReceived or AuditEvents.AggregateProduced or AuditEvents.PrivacySpent);
        bool agent = entries.Any(e => e.Type is AuditEvents.MessageSent or AuditEvents.PrivacyLedger or AuditEvents.RoundJoined or AuditEvents.ModelReceived);
        Role = aggregator ? "aggregator" : agent ? "agent" : "unknown";
    }

    public string Directory { get; }

    public AuditVerification Verification { get; }

    /// <summary>The lines the newest valid checkpoint covers.</summary>
    public IReadOnlyList<LogEntry> Entries { get; }

    /// <summary>Well-formed lines after the newest valid checkpoint: no signature covers them.</summary>
    public IReadOnlyList<LogEntry> Unverified { get; }

    /// <summary>Whether the log was checked against a key the auditor gave (--key), not the log's own verifier.key.</summary>
    public bool Pinned { get; }

    public string Actor { get; }

    public string Role { get; }

    public IEnumerable<LogEntry> OfType(string type) => Entries.Where(e => e.Type == type);

    /// <summary>A field as display text: strings as-is, numbers and other values as their JSON text; empty when absent.</summary>
    public static string Text(LogEntry entry, string name)
    {
        if (!entry.Fields.TryGetProperty(name, out JsonElement value))
        {
            return string.Empty;
        }

        return value.ValueKind switch
        {
            JsonValueKind.String => value.GetString()!,
            JsonValueKind.Array => string.Join(", ", value.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText())),
            JsonValueKind.Null => string.Empty,
            _ => value.GetRawText(),
        };
    }

    public static double? Number(LogEntry entry, string name) => Number(entry.Fields, name);

    /// <summary>As <see cref="Number(LogEntry, string)"/>, of a line's <c>fields</c> object.</summary>
    public static double? Number(JsonElement fields, string name) =>
        fields.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble()
        : fields.TryGetProperty(name, out value) && value.ValueKind == JsonValueKind.String
          && double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) ? parsed
        : null;
}
