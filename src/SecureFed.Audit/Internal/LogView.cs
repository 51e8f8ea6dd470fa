using System.Globalization;
using System.Text.Json;

namespace SecureFed.Audit.Internal;

/// <summary>One verified log as the report sees it.</summary>
internal sealed class LogView
{
    public LogView(string directory, AuditVerification verification, IReadOnlyList<LogEntry> entries)
    {
        Directory = directory;
        Verification = verification;
        Entries = entries;
        Actor = verification.Actor ?? Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
        bool aggregator = entries.Any(e => e.Type is AuditEvents.RoundOpened or AuditEvents.MaskedInputReceived or AuditEvents.AggregateProduced or AuditEvents.PrivacySpent);
        bool agent = entries.Any(e => e.Type is AuditEvents.MessageSent or AuditEvents.PrivacyLedger or AuditEvents.RoundJoined or AuditEvents.ModelReceived);
        Role = aggregator ? "aggregator" : agent ? "agent" : "unknown";
    }

    public string Directory { get; }

    public AuditVerification Verification { get; }

    public IReadOnlyList<LogEntry> Entries { get; }

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

    public static double? Number(LogEntry entry, string name) =>
        entry.Fields.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble()
        : entry.Fields.TryGetProperty(name, out value) && value.ValueKind == JsonValueKind.String
          && double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) ? parsed
        : null;
}
