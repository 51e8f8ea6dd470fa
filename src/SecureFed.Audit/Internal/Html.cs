using System.Text;

namespace SecureFed.Audit.Internal;

/// <summary>
/// HTML escaping of text and attribute values. Control characters (but the line break), Unicode format characters
/// (bidirectional overrides and isolates, zero-width and tag characters), U+2028/U+2029 and unpaired surrogates become
/// U+FFFD first, as <see cref="AuditText.Printable"/> makes them for the terminal: the report shows text from the logs it
/// reads (actors, sites, reasons), and a site writes its own log, so a right-to-left override in its actor or in a reason
/// made the auditor's browser show the rest of that verdict, problem or note reversed. Other characters stay as they are
/// (the page is UTF-8).
/// </summary>
internal static class Html
{
    public static string Encode(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return string.Empty;
        }

        text = text.Contains('\n', StringComparison.Ordinal) ? string.Join('\n', text.Split('\n').Select(AuditText.Printable)) : AuditText.Printable(text);
        if (text.AsSpan().IndexOfAny("<>&\"'") < 0)
        {
            return text;
        }

        var result = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            result.Append(c switch
            {
                '<' => "&lt;",
                '>' => "&gt;",
                '&' => "&amp;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => c.ToString(),
            });
        }

        return result.ToString();
    }
}
