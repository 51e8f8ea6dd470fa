using System.Collections.Concurrent;

namespace SecureFed.Aggregator;

/// <summary>
/// Counts the TLS connections each site holds open to the agent endpoint and bounds them at <see cref="LimitPerSite"/>, so
/// one site (a valid client certificate) cannot make this process hold TLS and HTTP/2 state, and up to Kestrel's 100 streams,
/// for any number of connections (threat-model/README.md §7). <see cref="AgentListener"/> takes a place for each connection
/// right after its TLS handshake and gives it back when the connection ends; a connection over the limit is closed before any
/// HTTP/2 frame of it is read. Also decides which refusals are logged: at most one line per site every
/// <see cref="LogInterval"/>, carrying the count of refusals since the previous line, so a hostile site cannot flood the log.
/// Thread-safe; a site's count never exceeds the limit and never goes below zero. Keys are site names, plus
/// <see cref="Unidentified"/>: bounded by the federation manifest.
/// </summary>
public sealed class ConnectionGate
{
    /// <summary>
    /// The default of <see cref="AggregatorOptions.MaxConnectionsPerSite"/>: 8 (an honest agent holds one HTTP/2 connection
    /// to the endpoint, and a new one only while an old one is being replaced).
    /// </summary>
    public const int DefaultLimitPerSite = 8;

    /// <summary>
    /// The key shared by every connection whose certificate chains to the federation CA but identifies no site (unknown,
    /// revoked, or not the manifest's certificate for its name): they are refused at their first call, and together hold at
    /// most <see cref="LimitPerSite"/> connections. Site names are <c>[a-z0-9-]</c>, so it names no site.
    /// </summary>
    public const string Unidentified = "(unidentified certificate)";

    /// <summary>The shortest time between two log lines about one site's refused connections: 10 s.</summary>
    public static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<string, Site> _sites = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    /// <summary>Creates the gate.</summary>
    /// <param name="limitPerSite">Connections one site may hold open at once (at least 1).</param>
    /// <param name="time">The clock of <see cref="LogInterval"/>; null: <see cref="TimeProvider.System"/>.</param>
    public ConnectionGate(int limitPerSite, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limitPerSite, 1);
        LimitPerSite = limitPerSite;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Connections one site may hold open at once.</summary>
    public int LimitPerSite { get; }

    /// <summary><paramref name="site"/>'s connections open here right now.</summary>
    public int Open(string site)
    {
        ArgumentNullException.ThrowIfNull(site);
        return _sites.TryGetValue(site, out Site? state) ? Volatile.Read(ref state.Open) : 0;
    }

    /// <summary>
    /// Takes one of <paramref name="site"/>'s <see cref="LimitPerSite"/> places, or returns false at once when the site
    /// already holds that many. Each true must be matched by one <see cref="Release"/>.
    /// </summary>
    public bool TryAcquire(string site)
    {
        ArgumentNullException.ThrowIfNull(site);
        Site state = _sites.GetOrAdd(site, _ => new Site());
        int open = Volatile.Read(ref state.Open);
        while (true)
        {
            if (open >= LimitPerSite)
            {
                return false;
            }

            int seen = Interlocked.CompareExchange(ref state.Open, open + 1, open);
            if (seen == open)
            {
                return true;
            }

            open = seen;
        }
    }

    /// <summary>
    /// Gives back one of <paramref name="site"/>'s places; returns false (and changes nothing) when the site holds none, so
    /// the count never goes below zero.
    /// </summary>
    public bool Release(string site)
    {
        ArgumentNullException.ThrowIfNull(site);
        if (!_sites.TryGetValue(site, out Site? state))
        {
            return false;
        }

        int open = Volatile.Read(ref state.Open);
        while (true)
        {
            if (open <= 0)
            {
                return false;
            }

            int seen = Interlocked.CompareExchange(ref state.Open, open - 1, open);
            if (seen == open)
            {
                return true;
            }

            open = seen;
        }
    }

    /// <summary>
    /// Records one refused connection of <paramref name="site"/> and says whether to log it: true for the first refusal of
    /// the site and then at most once every <see cref="LogInterval"/>, with <paramref name="refused"/> the site's refusals
    /// since its previous line, this one included (the ones in between were counted, not logged).
    /// </summary>
    public bool RefusalToLog(string site, out long refused)
    {
        ArgumentNullException.ThrowIfNull(site);
        Site state = _sites.GetOrAdd(site, _ => new Site());
        long now = _time.GetTimestamp();
        lock (state)
        {
            state.Unlogged++;
            if (state.LastLine is long last && _time.GetElapsedTime(last, now) < LogInterval)
            {
                refused = 0;
                return false;
            }

            refused = state.Unlogged;
            state.Unlogged = 0;
            state.LastLine = now;
            return true;
        }
    }

    /// <summary>One site's open connections and the state of its refusal log lines.</summary>
    private sealed class Site
    {
        public int Open;

        /// <summary>Timestamp of the last refusal line (guarded by the lock on this object).</summary>
        public long? LastLine;

        /// <summary>Refusals since the last line (guarded by the lock on this object).</summary>
        public long Unlogged;
    }
}
