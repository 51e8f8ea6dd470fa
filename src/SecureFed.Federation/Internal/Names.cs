namespace SecureFed.Federation.Internal;

/// <summary>
/// Validation of federation and site names: a DNS label, lowercase <c>[a-z0-9-]</c>, 1..63 characters, starting and
/// ending with a letter or digit. A leading '-' made a name that a command line cannot pass back (<c>provision revoke
/// --site --</c> reads the name as an option), and the name is a certificate CN and a folder name too.
/// </summary>
internal static class Names
{
    public const int MaxLength = 63;

    /// <summary>The aggregator's certificate CN; reserved, no site may be called this.</summary>
    public const string Aggregator = "aggregator";

    public static bool IsValid(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxLength)
        {
            return false;
        }

        foreach (char c in name)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
            {
                return false;
            }
        }

        return name[0] != '-' && name[^1] != '-';
    }

    /// <summary>
    /// Describes why <paramref name="name"/> is invalid, or returns null when it is valid. With <paramref name="stored"/>
    /// (a name read from an existing manifest) a leading or trailing '-' is still accepted: provisioning allowed it before
    /// session 58, and a federation already provisioned so must keep loading; new names follow the whole rule.
    /// </summary>
    public static string? Problem(string? name, string what, bool stored = false)
    {
        if (string.IsNullOrEmpty(name))
        {
            return $"{what} name is empty; use 1..{MaxLength} characters of lowercase a-z, 0-9 and '-' (not first or last).";
        }

        if (name.Length > MaxLength)
        {
            return $"{what} name '{name}' has {name.Length} characters; at most {MaxLength} are allowed.";
        }

        if (!stored && (name[0] == '-' || name[^1] == '-'))
        {
            return $"{what} name '{name}' is invalid; it must start and end with a lowercase letter or digit (a-z, 0-9), '-' only between them.";
        }

        return (stored ? name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-') : IsValid(name))
            ? null
            : $"{what} name '{name}' is invalid; only lowercase a-z, 0-9 and '-' are allowed.";
    }
}
