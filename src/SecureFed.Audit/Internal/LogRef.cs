using System.Globalization;

namespace SecureFed.Audit.Internal;

/// <summary>Where a number in the report comes from: one line of one actor's audit.jsonl (line number = seq).</summary>
internal readonly record struct LogRef(string Actor, long Line)
{
    public static LogRef Of(LogView log, LogEntry entry) => new(log.Actor, entry.Line);

    /// <summary>Cites several lines of one or more logs, e.g. "aggregator audit.jsonl lines 12, 30".</summary>
    public static string Cite(IEnumerable<LogRef> refs)
    {
        List<string> parts = [.. refs.GroupBy(r => r.Actor, StringComparer.Ordinal).Select(g =>
        {
            long[] lines = [.. g.Select(r => r.Line).Distinct().Order()];
            return string.Create(CultureInfo.InvariantCulture,
                $"{g.Key} {AuditLog.LogFileName} {(lines.Length == 1 ? "line" : "lines")} {string.Join(", ", lines)}");
        })];
        return parts.Count == 0 ? "no log line" : string.Join("; ", parts);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Actor} {AuditLog.LogFileName} line {Line}");
}
