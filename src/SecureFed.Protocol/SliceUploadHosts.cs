namespace SecureFed.Protocol;

/// <summary>
/// The hosts a version-4 round's slice endpoints name (docs/PROTOCOL.md "Version 4: uploads by slice"): an agent uploads
/// to every host at once over a channel of its own, so it refuses an announcement naming more than <see cref="Max"/>
/// of them, and an aggregator announcing more than that falls back to whole uploads (version 3) instead.
/// </summary>
public static class SliceUploadHosts
{
    /// <summary>The most distinct hosts (scheme, host and port) the slice endpoints of one announcement may name.</summary>
    public const int Max = 64;

    /// <summary>The number of distinct hosts (scheme, host and port, case-insensitive) of <paramref name="endpoints"/> (absolute URLs).</summary>
    public static int Count(IEnumerable<string> endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        return endpoints.Select(e => new Uri(e).GetLeftPart(UriPartial.Authority)).Distinct(StringComparer.OrdinalIgnoreCase).Count();
    }
}
