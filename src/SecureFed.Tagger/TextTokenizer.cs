using System.Text.RegularExpressions;

namespace SecureFed.Tagger;

/// <summary>Splits raw text into tokens: runs of letters/digits, and every other non-space character on its own.</summary>
public static partial class TextTokenizer
{
    /// <summary>Tokenises one line of text.</summary>
    /// <param name="text">The text.</param>
    /// <returns>The tokens.</returns>
    public static IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return [.. TokenRegex().Matches(text).Select(m => m.Value)];
    }

    [GeneratedRegex(@"[\p{L}\p{N}]+|[^\p{L}\p{N}\s]", RegexOptions.CultureInvariant)]
    private static partial Regex TokenRegex();
}
