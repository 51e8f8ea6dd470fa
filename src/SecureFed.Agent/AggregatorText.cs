using System.Globalization;
using SecureFed.Audit;

namespace SecureFed.Agent;

/// <summary>
/// Text the aggregator supplied (a round's abort reason, a gRPC status detail, an exception message quoting either) made
/// fit for this site's log, its round reports and the messages it stops with. A hostile or broken aggregator can send
/// megabytes, line breaks that forge log lines of their own, or ANSI escape sequences that recolour or clear the
/// operator's terminal: the text is cut to <see cref="MaxChars"/> characters, followed by "… (N more characters)" when
/// cut, and every control character (CR, LF, ESC, the other C0 and C1 characters, DEL), format character and unpaired
/// surrogate becomes U+FFFD, as <see cref="AuditText.Bound(string?, int)"/> cleans a site's text at the aggregator.
/// Every place the agent logs aggregator text goes through here.
/// </summary>
internal static class AggregatorText
{
    /// <summary>The most characters of the aggregator's text that are shown (as the aggregator bounds a site's reason).</summary>
    internal const int MaxChars = AuditText.ReasonChars;

    /// <summary>
    /// <paramref name="text"/> bounded to <see cref="MaxChars"/> characters (never between the halves of a surrogate pair)
    /// with "… (N more characters)" when cut, its control and format characters replaced; null gives "".
    /// </summary>
    public static string ForLog(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return "";
        }

        int length = Math.Min(text.Length, MaxChars);
        if (length < text.Length && char.IsHighSurrogate(text[length - 1]) && char.IsLowSurrogate(text[length]))
        {
            length--; // keep the pair whole: leave it out
        }

        string shown = AuditText.Printable(length == text.Length ? text : text[..length]);
        return length == text.Length
            ? shown
            : string.Create(CultureInfo.InvariantCulture, $"{shown}{AuditText.Ellipsis} ({text.Length - length:N0} more characters)");
    }
}
