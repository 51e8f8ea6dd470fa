using System.Globalization;

namespace SecureFed.Cli.Commands;

/// <summary>Comma-separated number options (<c>--epsilon 1,3,8</c>, <c>--skew 0.6,0.3,0.1</c>), parsed the same way by every command.</summary>
internal static class NumberLists
{
    /// <summary>
    /// The numbers of <paramref name="text"/> (invariant culture). An empty entry (<c>1,,3</c>, or a comma at either end)
    /// is refused, not dropped: it is more likely a number left out than a wish for one fewer.
    /// </summary>
    /// <param name="text">The option's value.</param>
    /// <param name="option">The option, e.g. <c>--epsilon</c>.</param>
    /// <param name="expected">What the option takes, for the message, e.g. "comma-separated numbers or 'none'".</param>
    /// <returns>The numbers, in order.</returns>
    /// <exception cref="UsageException">An entry is empty or not a number.</exception>
    public static double[] Parse(string text, string option, string expected = "comma-separated numbers")
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] entries = text.Split(',', StringSplitOptions.TrimEntries);
        if (entries.Any(e => e.Length == 0))
        {
            throw new UsageException($"{option} '{text}' has an empty entry (two commas in a row, or one at an end); {option} takes {expected}, e.g. 1,3,8.");
        }

        try
        {
            return [.. entries.Select(v => double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture))];
        }
        catch (FormatException)
        {
            throw new UsageException($"{option} takes {expected}, not '{text}'");
        }
    }
}
