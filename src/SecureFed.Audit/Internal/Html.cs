using System.Text;

namespace SecureFed.Audit.Internal;

/// <summary>
/// HTML escaping of text and attribute values. Control characters (but the tab and line breaks, LF and CR), Unicode format characters
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

        text = Printable(text);
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

    /// <summary>
    /// <paramref name="text"/> made printable (<see cref="AuditText.Printable"/>) between its tabs and line breaks (LF, CR),
    /// which are kept: in a page they are only white space (the parser turns CR and CRLF into LF), so they can neither
    /// reorder nor hide text, and a CRLF or tab in a logged reason is not shown as U+FFFD.
    /// </summary>
    private static string Printable(string text)
    {
        if (text.AsSpan().IndexOfAny("\t\r\n") < 0)
        {
            return AuditText.Printable(text);
        }

        var kept = new StringBuilder(text.Length);
        int start = 0;
        for (int i = 0; i <= text.Length; i++)
        {
            if (i == text.Length || text[i] is '\t' or '\r' or '\n')
            {
                kept.Append(AuditText.Printable(text[start..i]));
                if (i < text.Length)
                {
                    kept.Append(text[i]);
                }

                start = i + 1;
            }
        }

        return kept.ToString();
    }
}
