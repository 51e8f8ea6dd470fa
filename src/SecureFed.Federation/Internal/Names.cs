namespace SecureFed.Federation.Internal;

/// <summary>Validation of federation and site names (lowercase <c>[a-z0-9-]</c>, 1..63 characters).</summary>
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

        return true;
    }

    /// <summary>Describes why <paramref name="name"/> is invalid, or returns null when it is valid.</summary>
    public static string? Problem(string? name, string what)
    {
        if (string.IsNullOrEmpty(name))
        {
            return $"{what} name is empty; use 1..{MaxLength} characters of lowercase a-z, 0-9 and '-'.";
        }

        if (name.Length > MaxLength)
        {
            return $"{what} name '{name}' has {name.Length} characters; at most {MaxLength} are allowed.";
        }

        return IsValid(name) ? null : $"{what} name '{name}' is invalid; only lowercase a-z, 0-9 and '-' are allowed.";
    }
}
