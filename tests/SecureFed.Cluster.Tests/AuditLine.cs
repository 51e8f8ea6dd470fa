using System.Globalization;
using System.Text.Json;

namespace SecureFed.Cluster.Tests;

/// <summary>One event of an audit log (its type and fields), read from the log's JSON-lines files.</summary>
internal sealed record AuditLine(string Type, JsonElement Fields)
{
    public static List<AuditLine> Read(string directory) =>
    [
        .. Directory.EnumerateFiles(directory, "*.jsonl").Order(StringComparer.Ordinal).SelectMany(File.ReadAllLines).Where(l => l.Length > 0).Select(l =>
        {
            using JsonDocument doc = JsonDocument.Parse(l);
            return new AuditLine(doc.RootElement.GetProperty("type").GetString()!, doc.RootElement.GetProperty("fields").Clone());
        }),
    ];

    public string Text(string name) => Fields.TryGetProperty(name, out JsonElement value)
        ? value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText()
        : "";

    public long Number(string name) => Fields.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Number
        ? value.GetInt64()
        : long.Parse(Text(name), CultureInfo.InvariantCulture);

    public string[] List(string name) => Fields.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Array
        ? [.. value.EnumerateArray().Select(e => e.GetString()!)]
        : [];
}
