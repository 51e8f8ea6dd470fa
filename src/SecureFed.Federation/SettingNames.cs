using System.ComponentModel;
using System.Globalization;
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

    /// <summary>
    /// One problem per setting of <paramref name="children"/> (the section's direct children, as configuration holds them)
    /// whose value has the wrong shape or type for its property of <paramref name="optionsType"/>, which binding would
    /// silently drop or report one at a time in .NET terms: one value where a list is expected (<c>--SecureFed:X=0.5,0.5</c>),
    /// an object or list where one value is expected (<c>"Rounds": {"a": 1}</c>), or a value that is not of the property's
    /// type (<c>"Rounds": "ten"</c>), each named with its key, its value and the expected type in plain words. Keys that are
    /// not settings are left to <see cref="Unknown"/>. When this returns no problem, binding the section cannot fail.
    /// </summary>
    /// <param name="section">The section's path, e.g. <c>SecureFed</c>, for the messages.</param>
    /// <param name="children">The section's children.</param>
    /// <param name="optionsType">The options class the section binds to.</param>
    public static IReadOnlyList<string> Shape(string section, IEnumerable<SettingNode> children, Type optionsType)
    {
        ArgumentNullException.ThrowIfNull(children);
        ArgumentNullException.ThrowIfNull(optionsType);
        PropertyInfo[] properties = [.. optionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.SetMethod?.IsPublic == true)];
        var problems = new List<string>();
        foreach (SettingNode child in children.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            PropertyInfo? property = properties.FirstOrDefault(p => string.Equals(p.Name, child.Key, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                continue;
            }

            string path = $"{section}:{child.Key}";
            Type type = property.PropertyType;
            if (ElementType(type) is Type element)
            {
                if (!string.IsNullOrEmpty(child.Value)) // with or without elements from another source (the CLI adds defaults as :0, :1, …)
                {
                    problems.Add(ScalarForList(section, child.Key, child.Value, element));
                    continue;
                }

                foreach (SettingNode item in child.Children.OrderBy(c => c.Key, StringComparer.Ordinal))
                {
                    if (!int.TryParse(item.Key, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                    {
                        problems.Add($"{path} is a list, but the configuration gives it a key {path}:{item.Key}; give the elements as a JSON array in the config file or as {path}:0, {path}:1, ….");
                    }
                    else if (ValueProblem($"{path}:{item.Key}", item, element) is string problem)
                    {
                        problems.Add(problem);
                    }
                }
            }
            else if (IsScalar(type) && ValueProblem(path, child, type) is string problem)
            {
                problems.Add(problem);
            }
        }

        return problems;
    }

    /// <summary>Converts a value as configuration binding does; a problem naming the key, the value and the type, or null.</summary>
    private static string? ValueProblem(string path, SettingNode node, Type type)
    {
        if (node.Children.Count > 0)
        {
            string keys = string.Join(", ", node.Children.Select(c => c.Key).Order(StringComparer.Ordinal).Take(5));
            return $"{path} must be {Describe(type)}, but the configuration gives it an object or list (with {keys}); give it one value, e.g. \"{Leaf(path)}\": {Example(type)} in the config file or --{path}={Example(type).Trim('"')}.";
        }

        string? value = node.Value;
        Type? underlying = Nullable.GetUnderlyingType(type);
        if (value is null || type == typeof(string) || (underlying is not null && value.Length == 0))
        {
            return null;
        }

        try
        {
            _ = TypeDescriptor.GetConverter(underlying ?? type).ConvertFromInvariantString(value);
            return null;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or OverflowException or NotSupportedException || ex.InnerException is FormatException or OverflowException)
        {
            return $"{path} is '{Shorten(value)}', which is not {Describe(type)}.";
        }
    }

    private static string ScalarForList(string section, string key, string value, Type element)
    {
        string[] parts = [.. value.Split(',', StringSplitOptions.TrimEntries)];
        string indexed = string.Join(" ", parts.Select((v, i) => string.Create(CultureInfo.InvariantCulture, $"--{section}:{key}:{i}={v}")));
        bool quoted = element == typeof(string) || element.IsEnum;
        string json = string.Join(", ", parts.Select(v => quoted ? $"\"{v}\"" : v));
        return $"{section}:{key} is a list, but it was given as one value '{Shorten(value)}' (configuration binding would ignore it); " +
            $"give each element its own index: {indexed}, or a JSON array in the config file: \"{key}\": [{json}].";
    }

    /// <summary>The element type of an array or list setting; null for any other type.</summary>
    private static Type? ElementType(Type type)
    {
        if (type.IsArray)
        {
            return type.GetElementType();
        }

        return type != typeof(string) && type.IsGenericType && type.GetGenericArguments() is [Type argument] && typeof(System.Collections.IEnumerable).IsAssignableFrom(type)
            ? argument
            : null;
    }

    private static bool IsScalar(Type type)
    {
        Type t = Nullable.GetUnderlyingType(type) ?? type;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(decimal) || t == typeof(TimeSpan) || t == typeof(Uri);
    }

    /// <summary>The type in plain words.</summary>
    private static string Describe(Type type)
    {
        Type t = Nullable.GetUnderlyingType(type) ?? type;
        if (t.IsEnum)
        {
            return "one of " + string.Join(", ", Enum.GetNames(t));
        }

        return Type.GetTypeCode(t) switch
        {
            TypeCode.Boolean => "true or false",
            TypeCode.Byte or TypeCode.UInt16 or TypeCode.UInt32 or TypeCode.UInt64 => "a whole number, 0 or more",
            TypeCode.SByte or TypeCode.Int16 or TypeCode.Int32 or TypeCode.Int64 => string.Create(CultureInfo.InvariantCulture,
                $"a whole number{(t == typeof(int) ? $" (at most {int.MaxValue})" : "")}"),
            TypeCode.Single or TypeCode.Double or TypeCode.Decimal => "a number (with a decimal point, e.g. 0.5 or 1e-5)",
            TypeCode.String => "a text value",
            _ => t == typeof(TimeSpan) ? "a duration such as 00:01:30" : "a " + t.Name,
        };
    }

    private static string Example(Type type)
    {
        Type t = Nullable.GetUnderlyingType(type) ?? type;
        return Type.GetTypeCode(t) switch
        {
            TypeCode.Boolean => "true",
            TypeCode.Single or TypeCode.Double or TypeCode.Decimal => "0.5",
            TypeCode.String => "\"…\"",
            _ when t.IsEnum => $"\"{Enum.GetNames(t).FirstOrDefault()}\"",
            _ => "10",
        };
    }

    private static string Leaf(string path) => path[(path.LastIndexOf(':') + 1)..];

    private static string Shorten(string value) => value.Length <= 60 ? value : value[..57] + "...";

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
