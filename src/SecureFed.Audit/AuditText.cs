using System.Globalization;
using System.Text;

namespace SecureFed.Audit;

/// <summary>
/// Bounds text that a caller supplied (a header's federation, sender or session, a decline's reason) before it goes into
/// a refusal reason, an audit line or a log message. The result is at most the given number of UTF-16 characters plus
/// an ellipsis, so its escaped form in an audit line (at most 6 bytes per character, <c>\u00XX</c>) is bounded whatever
/// the caller sent; it is always valid Unicode (<see cref="AuditFields.Add(string, string?)"/> refuses unpaired
/// surrogates).
/// </summary>
public static class AuditText
{
    /// <summary>The bound for an identifier a caller names (federation, sender, session, site).</summary>
    public const int IdentifierChars = 128;

    /// <summary>The bound for free text a caller explains itself with (a decline's reason).</summary>
    public const int ReasonChars = 500;

    /// <summary>What a control character, a format character or an unpaired surrogate is replaced with (U+FFFD).</summary>
    public const char Replacement = '\uFFFD';

    /// <summary>Appended when the text was cut (U+2026).</summary>
    public const char Ellipsis = '\u2026';

    /// <summary>
    /// <paramref name="value"/> cut to at most <paramref name="maxChars"/> UTF-16 characters, never between the two halves
    /// of a surrogate pair, followed by <see cref="Ellipsis"/> when it was cut; control characters (C0, DEL, C1), format
    /// characters (Unicode category Cf: bidirectional overrides and isolates such as U+202E and U+2066–U+2069, zero-width
    /// characters, tag characters U+E0000–U+E007F; they could make an operator's console or an auditor's viewer show a
    /// line reversed or hide text in it), the line and paragraph separators U+2028 and U+2029 (categories Zl and Zp:
    /// a viewer or a JavaScript reader of the log may break a line there, so a caller could make its text look like a
    /// line of its own) and unpaired surrogates become <see cref="Replacement"/>. Null gives "". Text
    /// within the bound with none of them is returned as it is.
    /// </summary>
    /// <param name="value">The caller's text.</param>
    /// <param name="maxChars">The bound, at least 2 (room for a surrogate pair).</param>
    public static string Bound(string? value, int maxChars)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChars, 2);
        if (string.IsNullOrEmpty(value))
        {
            return "";
        }

        int length = Math.Min(value.Length, maxChars);
        if (length < value.Length && char.IsHighSurrogate(value[length - 1]) && char.IsLowSurrogate(value[length]))
        {
            length--; // keep the pair whole: leave it out
        }

        bool cut = length < value.Length;
        if (!cut && IsClean(value))
        {
            return value;
        }

        var text = new StringBuilder(length + 1);
        for (int i = 0; i < length; i++)
        {
            char c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < length && char.IsLowSurrogate(value[i + 1]))
            {
                if (IsFormat(value, i))
                {
                    text.Append(Replacement);
                }
                else
                {
                    text.Append(c).Append(value[i + 1]);
                }

                i++;
            }
            else
            {
                text.Append(char.IsControl(c) || char.IsSurrogate(c) || IsFormat(value, i) ? Replacement : c);
            }
        }

        if (cut)
        {
            text.Append(Ellipsis);
        }

        return text.ToString();
    }

    /// <summary>
    /// <paramref name="value"/> safe to print on a terminal or console: every control character (C0 such as ESC, DEL, C1),
    /// format character (Cf, e.g. bidirectional overrides) and unpaired surrogate becomes <see cref="Replacement"/>, so text
    /// read from a log (an actor, a site) cannot move the cursor, clear the screen or colour a fake verdict. Not cut.
    /// Print one line at a time: a line break is replaced too.
    /// </summary>
    /// <param name="value">Text that came from a log or another untrusted source; null gives "".</param>
    public static string Printable(string? value) => Bound(value, int.MaxValue);

    private static bool IsClean(string value)
    {
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                if (IsFormat(value, i))
                {
                    return false;
                }

                i++;
            }
            else if (char.IsControl(c) || char.IsSurrogate(c) || IsFormat(value, i))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Whether the character (or surrogate pair) at <paramref name="index"/> is a Unicode format character (Cf) or a line
    /// or paragraph separator (Zl, Zp: U+2028, U+2029).
    /// </summary>
    private static bool IsFormat(string value, int index) => CharUnicodeInfo.GetUnicodeCategory(value, index)
        is UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator;
}
