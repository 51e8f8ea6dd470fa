using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace SecureFed.Privacy.Internal;

/// <summary>The JSON Lines encoding of the privacy ledger: one header line, then one line per entry, hash-chained.</summary>
internal static class LedgerCodec
{
    public const string Kind = "securefed.privacy-ledger";
    public const int Version = 1;
    public static readonly string GenesisHash = new('0', 64);

    // Relaxed escaping keeps '+' in timestamps readable; quotes and control characters are still escaped.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string HashLine(ReadOnlySpan<byte> line) => Convert.ToHexStringLower(SHA256.HashData(line));

    public static byte[] EncodeHeader(string owner, DateTimeOffset created)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("kind", Kind);
            writer.WriteNumber("version", Version);
            writer.WriteString("owner", owner);
            writer.WriteString("orders", "opacus");
            writer.WriteString("conversion", "improved");
            writer.WriteString("created", created.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
            writer.WriteString("prev", GenesisHash);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public static byte[] EncodeEntry(long sequence, LedgerEntry entry, string previousHash)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteNumber("seq", sequence);
            writer.WriteNumber("round", entry.Round);
            writer.WriteString("guarantee", GuaranteeNames.Of(entry.Guarantee));
            writer.WriteStartObject("mechanism");
            switch (entry.Mechanism)
            {
                case SubsampledGaussianMechanism g:
                    writer.WriteString("type", "subsampled_gaussian");
                    writer.WriteNumber("sample_rate", g.SampleRate);
                    writer.WriteNumber("noise_multiplier", g.NoiseMultiplier);
                    writer.WriteNumber("steps", g.Steps);
                    break;
                case ZcdpMechanism z:
                    writer.WriteString("type", "zcdp");
                    writer.WriteNumber("rho", z.Rho);
                    break;
                default:
                    throw new ArgumentException($"Unsupported mechanism {entry.Mechanism.GetType().Name}.", nameof(entry));
            }

            writer.WriteEndObject();
            writer.WriteNumber("epsilon_after", entry.EpsilonAfter);
            writer.WriteNumber("delta", entry.Delta);
            writer.WriteString("timestamp", entry.Timestamp.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
            writer.WriteString("prev", previousHash);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Parses and checks a header line; returns (owner, prev).</summary>
    public static (string Owner, string Prev) DecodeHeader(ReadOnlyMemory<byte> line, string path)
    {
        using JsonDocument doc = Parse(line, path, 1);
        JsonElement root = doc.RootElement;
        string kind = GetString(root, "kind", path, 1);
        if (kind != Kind)
        {
            throw Corrupt(path, 1, $"not a SecureFed privacy ledger (kind '{kind}')");
        }

        if (GetLong(root, "version", path, 1) != Version)
        {
            throw Corrupt(path, 1, $"unsupported ledger version {root.GetProperty("version")}");
        }

        if (GetString(root, "orders", path, 1) != "opacus" || GetString(root, "conversion", path, 1) != "improved")
        {
            throw Corrupt(path, 1, "unsupported accounting parameters (expected orders 'opacus', conversion 'improved')");
        }

        GetTimestamp(root, "created", path, 1);
        return (GetString(root, "owner", path, 1), GetString(root, "prev", path, 1));
    }

    /// <summary>Parses an entry line; returns (seq, entry, prev).</summary>
    public static (long Sequence, LedgerEntry Entry, string Prev) DecodeEntry(ReadOnlyMemory<byte> line, string path, int lineNumber)
    {
        using JsonDocument doc = Parse(line, path, lineNumber);
        JsonElement root = doc.RootElement;
        long seq = GetLong(root, "seq", path, lineNumber);
        long round = GetLong(root, "round", path, lineNumber);
        string guaranteeName = GetString(root, "guarantee", path, lineNumber);
        if (!GuaranteeNames.TryParse(guaranteeName, out Guarantee guarantee))
        {
            throw Corrupt(path, lineNumber, $"unknown guarantee '{guaranteeName}'");
        }

        if (!root.TryGetProperty("mechanism", out JsonElement m) || m.ValueKind != JsonValueKind.Object)
        {
            throw Corrupt(path, lineNumber, "missing 'mechanism' object");
        }

        PlannedMechanism mechanism;
        try
        {
            mechanism = GetString(m, "type", path, lineNumber) switch
            {
                "subsampled_gaussian" => new SubsampledGaussianMechanism(
                    GetDouble(m, "sample_rate", path, lineNumber),
                    GetDouble(m, "noise_multiplier", path, lineNumber),
                    GetLong(m, "steps", path, lineNumber)),
                "zcdp" => new ZcdpMechanism(GetDouble(m, "rho", path, lineNumber)),
                string other => throw Corrupt(path, lineNumber, $"unknown mechanism type '{other}'"),
            };
        }
        catch (ArgumentOutOfRangeException ex)
        {
            throw Corrupt(path, lineNumber, $"invalid mechanism parameters ({ex.Message})");
        }

        var entry = new LedgerEntry(
            round,
            guarantee,
            mechanism,
            GetDouble(root, "epsilon_after", path, lineNumber),
            GetDouble(root, "delta", path, lineNumber),
            GetTimestamp(root, "timestamp", path, lineNumber));
        return (seq, entry, GetString(root, "prev", path, lineNumber));
    }

    public static InvalidDataException Corrupt(string path, int lineNumber, string what) =>
        new($"Privacy ledger '{path}' is corrupt at line {lineNumber}: {what}. The ledger is never reset automatically; restore it from a backup or investigate.");

    private static JsonDocument Parse(ReadOnlyMemory<byte> line, string path, int lineNumber)
    {
        try
        {
            JsonDocument doc = JsonDocument.Parse(line);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw Corrupt(path, lineNumber, "line is not a JSON object");
            }

            return doc;
        }
        catch (JsonException ex)
        {
            throw Corrupt(path, lineNumber, $"bad JSON ({ex.Message})");
        }
    }

    private static JsonElement Get(JsonElement obj, string name, JsonValueKind kind, string path, int lineNumber)
    {
        if (!obj.TryGetProperty(name, out JsonElement value) || value.ValueKind != kind)
        {
            throw Corrupt(path, lineNumber, $"missing or mistyped '{name}'");
        }

        return value;
    }

    private static string GetString(JsonElement obj, string name, string path, int lineNumber)
    {
        JsonElement value = Get(obj, name, JsonValueKind.String, path, lineNumber);
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException ex)
        {
            // Invalid UTF-8 (or a lone surrogate escape) inside the string (found by the reliability fuzz tests).
            throw Corrupt(path, lineNumber, $"'{name}' is not valid text ({ex.Message})");
        }
    }

    private static long GetLong(JsonElement obj, string name, string path, int lineNumber) =>
        Get(obj, name, JsonValueKind.Number, path, lineNumber).TryGetInt64(out long v)
            ? v
            : throw Corrupt(path, lineNumber, $"'{name}' is not an integer");

    private static double GetDouble(JsonElement obj, string name, string path, int lineNumber) =>
        Get(obj, name, JsonValueKind.Number, path, lineNumber).TryGetDouble(out double v) && double.IsFinite(v)
            ? v
            : throw Corrupt(path, lineNumber, $"'{name}' is not a finite number");

    private static DateTimeOffset GetTimestamp(JsonElement obj, string name, string path, int lineNumber) =>
        DateTimeOffset.TryParseExact(GetString(obj, name, path, lineNumber), "O", CultureInfo.InvariantCulture, DateTimeStyles.None, out DateTimeOffset t)
            ? t
            : throw Corrupt(path, lineNumber, $"'{name}' is not an ISO-8601 timestamp");
}
