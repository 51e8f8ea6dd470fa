using System.Text.Json;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit;

/// <summary>
/// The fields of one audit event. Only strings, integers, finite numbers, booleans, string lists, SHA-256 digests
/// (written as lowercase hex) and nested objects can be logged — never raw bytes, so secrets, shares and updates
/// cannot end up in a log by accident. Field names are 1–64 characters of <c>[A-Za-z0-9_.-]</c>, unique per object;
/// they are written sorted ordinally.
/// </summary>
public sealed class AuditFields
{
    private const int MaxNameLength = 64;
    private readonly SortedDictionary<string, Action<Utf8JsonWriter>> _fields = new(StringComparer.Ordinal);

    internal AuditFields()
    {
    }

    /// <summary>Number of fields added.</summary>
    public int Count => _fields.Count;

    /// <summary>Adds a string (or JSON <c>null</c>).</summary>
    public AuditFields Add(string name, string? value)
    {
        if (value is not null)
        {
            CanonicalJson.ThrowIfInvalidText(value, nameof(value));
        }

        return Set(name, w =>
        {
            if (value is null)
            {
                w.WriteNullValue();
            }
            else
            {
                w.WriteStringValue(value);
            }
        });
    }

    /// <summary>Adds an integer.</summary>
    public AuditFields Add(string name, long value) => Set(name, w => w.WriteNumberValue(value));

    /// <summary>Adds a finite number (shortest round-trip form; -0 is logged as 0).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="value"/> is NaN or infinite.</exception>
    public AuditFields Add(string name, double value)
    {
        if (!double.IsFinite(value))
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, $"Audit field '{name}' must be a finite number.");
        }

        // -0 would be written as "-0" but read back as the integer 0; log it as 0 so every line stays canonical.
        double normalized = value == 0 ? 0.0 : value;
        return Set(name, w => w.WriteNumberValue(normalized));
    }

    /// <summary>Adds a boolean.</summary>
    public AuditFields Add(string name, bool value) => Set(name, w => w.WriteBooleanValue(value));

    /// <summary>Adds a list of strings (kept in the given order).</summary>
    public AuditFields Add(string name, IEnumerable<string> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        string[] copy = [.. values];
        foreach (string item in copy)
        {
            if (item is null)
            {
                throw new ArgumentException($"Audit field '{name}' contains a null list element.", nameof(values));
            }

            CanonicalJson.ThrowIfInvalidText(item, nameof(values));
        }

        return Set(name, w =>
        {
            w.WriteStartArray();
            foreach (string item in copy)
            {
                w.WriteStringValue(item);
            }

            w.WriteEndArray();
        });
    }

    /// <summary>Adds a SHA-256 digest, written as 64 lowercase hex digits.</summary>
    /// <exception cref="ArgumentException"><paramref name="sha256"/> is not 32 bytes.</exception>
    public AuditFields AddDigest(string name, ReadOnlySpan<byte> sha256)
    {
        if (sha256.Length != 32)
        {
            throw new ArgumentException($"Audit field '{name}' must be a 32-byte SHA-256 digest, got {sha256.Length} bytes.", nameof(sha256));
        }

        string hex = Convert.ToHexStringLower(sha256);
        return Set(name, w => w.WriteStringValue(hex));
    }

    /// <summary>Adds a nested object whose fields are filled by <paramref name="fields"/>.</summary>
    public AuditFields AddObject(string name, Action<AuditFields> fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        var nested = new AuditFields();
        fields(nested);
        return Set(name, nested.WriteTo);
    }

    /// <summary>Writes the fields as a JSON object with keys in ordinal order.</summary>
    internal void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        foreach (KeyValuePair<string, Action<Utf8JsonWriter>> field in _fields)
        {
            writer.WritePropertyName(field.Key);
            field.Value(writer);
        }

        writer.WriteEndObject();
    }

    /// <summary>Whether <paramref name="name"/> is a valid field name.</summary>
    internal static bool IsValidName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxNameLength)
        {
            return false;
        }

        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    private AuditFields Set(string name, Action<Utf8JsonWriter> write)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!IsValidName(name))
        {
            throw new ArgumentException($"Audit field name '{name}' must be 1-{MaxNameLength} characters of A-Z, a-z, 0-9, '_', '.', '-'.", nameof(name));
        }

        if (!_fields.TryAdd(name, write))
        {
            throw new ArgumentException($"Audit field '{name}' was added twice.", nameof(name));
        }

        return this;
    }
}
