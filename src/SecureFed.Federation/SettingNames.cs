using System.Reflection;

namespace SecureFed.Federation;

/// <summary>
/// Names in a configuration section that no setting has. Configuration binding ignores them, so a misspelt key
/// (<c>EpsilonBuget</c>) would silently leave the default of the setting it meant; the agent and the aggregator refuse
/// to start instead, naming the key and the closest setting.
/// </summary>
public static class SettingNames
{
    /// <summary>
    /// One problem per key of <paramref name="keys"/> (the section's direct children) that is neither a public settable
    /// property of <paramref name="optionsType"/> (binding ignores read-only ones) nor one of <paramref name="alsoAllowed"/> (keys read elsewhere, e.g. a nested
    /// section); names compare case-insensitively, as binding does.
    /// </summary>
    /// <param name="section">The section's path, e.g. <c>SecureFed</c>, for the messages.</param>
    /// <param name="keys">The keys found in the section.</param>
    /// <param name="optionsType">The options class the section binds to.</param>
    /// <param name="alsoAllowed">Keys that are not properties but are read by other code.</param>
    public static IReadOnlyList<string> Unknown(string section, IEnumerable<string> keys, Type optionsType, params string[] alsoAllowed)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(optionsType);
        string[] known =
        [
            .. optionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod?.IsPublic == true).Select(p => p.Name),
            .. alsoAllowed,
        ];
        var problems = new List<string>();
        foreach (string key in keys.Distinct(StringComparer.OrdinalIgnoreCase).Order(StringComparer.Ordinal))
        {
            if (known.Contains(key, StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }

            string? closest = Closest(key, known);
            problems.Add(closest is null
                ? $"{section}:{key} is not a setting."
                : $"{section}:{key} is not a setting (did you mean {section}:{closest}?).");
        }

        return problems;
    }

    /// <summary>The known name nearest to <paramref name="key"/> by edit distance (case-insensitive), if it is near enough to be a typo.</summary>
    private static string? Closest(string key, IEnumerable<string> known)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string name in known)
        {
            int d = Distance(key.ToUpperInvariant(), name.ToUpperInvariant());
            if (d < bestDistance)
            {
                (best, bestDistance) = (name, d);
            }
        }

        return bestDistance <= Math.Max(2, key.Length / 4) ? best : null;
    }

    /// <summary>Levenshtein distance.</summary>
    private static int Distance(string a, string b)
    {
        int[] previous = [.. Enumerable.Range(0, b.Length + 1)];
        int[] current = new int[b.Length + 1];
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
