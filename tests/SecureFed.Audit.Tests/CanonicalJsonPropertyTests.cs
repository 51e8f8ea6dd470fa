using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit.Tests;

public sealed class CanonicalJsonPropertyTests
{
    [Property(MaxTest = 300)]
    public Property SerializeLine_AnyValidText_ParsesBackAsCanonicalWithSameValues(NonNull<string> text, long number, bool flag, NormalFloat real)
    {
        string value = text.Get;
        bool valid;
        try
        {
            CanonicalJson.ThrowIfInvalidText(value, nameof(value));
            valid = true;
        }
        catch (ArgumentException)
        {
            valid = false;
        }

        if (!valid)
        {
            // Unpaired surrogates are refused up front rather than written lossily.
            return Prop.ToProperty(Throws(() => new AuditFields().Add("s", value)));
        }

        AuditFields fields = new AuditFields().Add("s", value).Add("n", number).Add("b", flag).Add("d", real.Get)
            .AddObject("o", o => o.Add("z", value).Add("a", [value, "x"]));
        byte[] line = CanonicalJson.SerializeLine(7, "2026-11-29T08:00:00.0000000Z", value.Length == 0 ? "a" : value, "t", fields);
        LogEntry? entry = LogEntry.TryParse(line, 7, out string? problem);
        bool ok = entry is not null
                  && entry.Fields.GetProperty("s").GetString() == value
                  && entry.Fields.GetProperty("n").GetInt64() == number
                  && entry.Fields.GetProperty("b").GetBoolean() == flag
                  && entry.Fields.GetProperty("d").GetDouble().Equals(real.Get)
                  && !line.Contains((byte)'\n');
        return Prop.Label(ok, problem ?? "values did not round-trip");
    }

    private static bool Throws(Action action)
    {
        try
        {
            action();
            return false;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }
}
