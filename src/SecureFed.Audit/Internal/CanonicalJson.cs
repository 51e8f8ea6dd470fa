using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace SecureFed.Audit.Internal;

/// <summary>
/// The canonical form of an audit line: UTF-8 JSON without insignificant whitespace, top-level keys in the fixed
/// order seq, ts, actor, type, fields; keys of every nested object in ordinal order; strings escaped by
/// System.Text.Json's relaxed encoder (quote, backslash and control characters always escaped; non-ASCII kept as UTF-8);
/// no name twice in one object.
/// </summary>
internal static class CanonicalJson
{
    public static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
    };

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void ThrowIfInvalidText(string value, string paramName)
    {
        try
        {
            _ = StrictUtf8.GetByteCount(value);
        }
        catch (EncoderFallbackException)
        {
            throw new ArgumentException("Audit text must be valid Unicode (it contains an unpaired surrogate).", paramName);
        }
    }

    public static string FormatTimestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    /// <summary>Serializes one line (without the newline).</summary>
    public static byte[] SerializeLine(long seq, string timestamp, string actor, string eventType, AuditFields fields)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteNumber("seq", seq);
            writer.WriteString("ts", timestamp);
            writer.WriteString("actor", actor);
            writer.WriteString("type", eventType);
            writer.WritePropertyName("fields");
            fields.WriteTo(writer);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Re-serializes a parsed line canonically; null with a problem when its shape is wrong.</summary>
    public static byte[]? Canonicalize(JsonElement root, out string? problem)
    {
        problem = null;
        if (root.ValueKind != JsonValueKind.Object)
        {
            problem = "is not a JSON object";
            return null;
        }

        string[] expected = ["seq", "ts", "actor", "type", "fields"];
        int i = 0;
        foreach (JsonProperty property in root.EnumerateObject())
        {
            if (i >= expected.Length || property.Name != expected[i])
            {
                problem = "does not have exactly the keys seq, ts, actor, type, fields in that order";
                return null;
            }

            i++;
        }

        if (i != expected.Length)
        {
            problem = "does not have exactly the keys seq, ts, actor, type, fields in that order";
            return null;
        }

        if (root.GetProperty("seq").ValueKind != JsonValueKind.Number || !root.GetProperty("seq").TryGetInt64(out long seq)
            || root.GetProperty("ts").ValueKind != JsonValueKind.String
            || root.GetProperty("actor").ValueKind != JsonValueKind.String
            || root.GetProperty("type").ValueKind != JsonValueKind.String
            || root.GetProperty("fields").ValueKind != JsonValueKind.Object)
        {
            problem = "has a field of the wrong kind (seq integer, ts/actor/type strings, fields object)";
            return null;
        }

        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteNumber("seq", seq);
            writer.WriteString("ts", root.GetProperty("ts").GetString());
            writer.WriteString("actor", root.GetProperty("actor").GetString());
            writer.WriteString("type", root.GetProperty("type").GetString());
            writer.WritePropertyName("fields");
            WriteValue(writer, root.GetProperty("fields"));
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteValue(Utf8JsonWriter writer, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                string? previous = null;
                foreach (JsonProperty property in value.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    // A name is written once: AuditFields never repeats one, and a repeated name would be read as its
                    // last value (TryGetProperty) while a reader of the line may see the first ("epsilon":99999,
                    // "epsilon":20). Written once, the canonical bytes differ from such a line: not in canonical form.
                    if (property.Name == previous)
                    {
                        continue;
                    }

                    previous = property.Name;
                    writer.WritePropertyName(property.Name);
                    WriteValue(writer, property.Value);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (JsonElement item in value.EnumerateArray())
                {
                    WriteValue(writer, item);
                }

                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                writer.WriteStringValue(value.GetString());
                break;
            case JsonValueKind.Number:
                if (value.TryGetInt64(out long integer))
                {
                    writer.WriteNumberValue(integer);
                }
                else
                {
                    writer.WriteNumberValue(value.GetDouble());
                }

                break;
            case JsonValueKind.True:
                writer.WriteBooleanValue(true);
                break;
            case JsonValueKind.False:
                writer.WriteBooleanValue(false);
                break;
            default:
                writer.WriteNullValue();
                break;
        }
    }
}
