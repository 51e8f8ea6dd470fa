using System.Text.Json;

namespace SecureFed.Audit;

/// <summary>One line of an audit log as <see cref="AuditLog.ReadEvents"/> returns it: its line number (= seq), type and fields.</summary>
/// <param name="Line">The 1-based line number.</param>
/// <param name="Type">The event type, e.g. <see cref="AuditEvents.PrivacyLedger"/>.</param>
/// <param name="Fields">The event's <c>fields</c> object.</param>
public sealed record AuditEvent(long Line, string Type, JsonElement Fields)
{
    /// <summary>The round the line is about: its integer <c>round</c> field, or null when it has none (or not an integer).</summary>
    public long? Round =>
        Fields.ValueKind == JsonValueKind.Object && Fields.TryGetProperty("round", out JsonElement r)
        && r.ValueKind == JsonValueKind.Number && r.TryGetInt64(out long n) ? n : null;
}
