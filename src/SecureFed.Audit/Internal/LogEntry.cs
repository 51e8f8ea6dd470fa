using System.Globalization;
using System.Text.Json;

namespace SecureFed.Audit.Internal;

/// <summary>One parsed, canonical audit line.</summary>
internal sealed record LogEntry(long Line, long Seq, string Timestamp, string Actor, string Type, JsonElement Fields)
{
    /// <summary>Parses and checks line <paramref name="lineNumber"/>: valid canonical JSON whose seq equals its line number.</summary>
    public static LogEntry? TryParse(ReadOnlyMemory<byte> bytes, long lineNumber, out string? problem)
    {
        JsonElement root;
        try
        {
            var reader = new Utf8JsonReader(bytes.Span);
            root = JsonElement.ParseValue(ref reader);
        }
        catch (JsonException ex)
        {
            problem = string.Create(CultureInfo.InvariantCulture, $"line {lineNumber} is not valid JSON (edited or truncated?): {ex.Message}");
            return null;
        }

        byte[]? canonical;
        string? shape;
        try
        {
            canonical = CanonicalJson.Canonicalize(root, out shape);
        }
        catch (InvalidOperationException ex)
        {
            // Invalid UTF-8 inside a string passes the reader and fails on decoding (found by the reliability fuzz tests).
            problem = string.Create(CultureInfo.InvariantCulture, $"line {lineNumber} is not valid UTF-8 JSON text (edited or corrupted?): {ex.Message}");
            return null;
        }
        catch (ArgumentException ex)
        {
            // A number beyond double (1e400) or a string beyond Utf8JsonWriter's limit cannot be re-serialized: name the line.
            problem = string.Create(CultureInfo.InvariantCulture, $"line {lineNumber} cannot be in canonical form (a number out of range or a value too large; edited or corrupted?): {ex.Message}");
            return null;
        }

        if (canonical is null)
        {
            problem = string.Create(CultureInfo.InvariantCulture, $"line {lineNumber} {shape}");
            return null;
        }

        if (!canonical.AsSpan().SequenceEqual(bytes.Span))
        {
            problem = string.Create(CultureInfo.InvariantCulture, $"line {lineNumber} is not in canonical form (it was edited by hand or by another tool)");
            return null;
        }

        long seq = root.GetProperty("seq").GetInt64();
        if (seq != lineNumber)
        {
            string hint = seq > lineNumber ? "a line before it was deleted, or lines were reordered" : "a line was inserted before it, or lines were reordered";
            problem = string.Create(CultureInfo.InvariantCulture, $"line {lineNumber} has seq {seq}, expected {lineNumber} ({hint})");
            return null;
        }

        problem = null;
        return new LogEntry(lineNumber, seq, root.GetProperty("ts").GetString()!, root.GetProperty("actor").GetString()!,
                            root.GetProperty("type").GetString()!, root.GetProperty("fields"));
    }
}
