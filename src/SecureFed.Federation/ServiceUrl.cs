using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace SecureFed.Federation;

/// <summary>
/// The https:// URLs of the services' settings (the agent's aggregator, the aggregator's listen address, a slice's
/// endpoint), read so that a refused one says what is wrong with it: <see cref="Uri.TryCreate(string?, UriKind, out Uri?)"/>
/// also fails on a port above 65535, which is not a URL of the wrong kind.
/// </summary>
public static partial class ServiceUrl
{
    /// <summary>The highest TCP port.</summary>
    public const int MaxPort = 65535;

    /// <summary>Parses <paramref name="value"/> as an absolute https:// URL.</summary>
    /// <param name="value">The setting's value.</param>
    /// <param name="uri">The URL, when it is one.</param>
    /// <param name="problem">
    /// When it is not: what is wrong, written to follow the setting's name, e.g. <c>must be an https:// URL</c> or
    /// <c>has port 65536 outside the TCP port range 0..65535</c>; empty otherwise.
    /// </param>
    /// <returns>Whether <paramref name="value"/> is an absolute https:// URL.</returns>
    public static bool TryParseHttps(string? value, [NotNullWhen(true)] out Uri? uri, out string problem)
    {
        if (Uri.TryCreate(value, UriKind.Absolute, out uri) && uri.Scheme == Uri.UriSchemeHttps)
        {
            problem = string.Empty;
            return true;
        }

        uri = null;
        problem = PortProblem(value) ?? "must be an https:// URL";
        return false;
    }

    /// <summary>
    /// When <paramref name="value"/> is an https:// URL but for its port, which is above <see cref="MaxPort"/>:
    /// <c>has port N outside the TCP port range 0..65535</c>; otherwise null.
    /// </summary>
    /// <param name="value">The setting's value.</param>
    public static string? PortProblem(string? value)
    {
        if (value is null || HttpsPort().Match(value.Trim()) is not { Success: true } match)
        {
            return null;
        }

        string port = match.Groups["port"].Value.TrimStart('0');
        bool tooHigh = port.Length > 5 || (port.Length == 5 && int.Parse(port, System.Globalization.CultureInfo.InvariantCulture) > MaxPort);
        return tooHigh ? $"has port {match.Groups["port"].Value} outside the TCP port range 0..{MaxPort}" : null;
    }

    /// <summary>https://, optional user info, a host (bracketed IPv6 or a name), ':' and the port's digits, then a path or the end.</summary>
    [GeneratedRegex(@"^https://(?:[^/?#@]*@)?(?:\[[^\]/?#]*\]|[^/?#:\[\]]*):(?<port>[0-9]+)(?:[/?#].*)?$", RegexOptions.IgnoreCase | RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex HttpsPort();
}
