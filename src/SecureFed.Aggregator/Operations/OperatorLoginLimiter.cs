using System.Net;

namespace SecureFed.Aggregator.Operations;

/// <summary>
/// Limits guesses of the operator token on the admin listener (the login form and <c>Authorization: Bearer</c>): after
/// <see cref="MaxFailuresPerAddress"/> wrong tokens from one remote address within <see cref="Window"/>, that address's
/// token attempts are refused (429 with <c>Retry-After</c>) for <see cref="Lockout"/>, the right token included (a
/// limit that still checked the token would answer every guess, only with another status); after
/// <see cref="MaxFailuresGlobal"/> wrong tokens from all addresses together within the window, every address's are.
/// A right token neither counts nor resets a count (a scraper's good requests from the same loopback address must not
/// buy an attacker fresh guesses). A browser already logged in keeps its session: the cookie is not a token attempt.
/// </summary>
/// <remarks>
/// The per-address table holds at most <see cref="MaxAddresses"/> entries: when it is full, entries whose window and
/// lockout have passed go first, then the one whose last failure is oldest among those not locked out, so a flood of source addresses (any local
/// process can bind 127.0.0.0/8) cannot grow it; an address evicted that way starts counting again, which the global
/// count bounds. IPv4-mapped IPv6 addresses count as their IPv4 address. The clock is injected.
/// </remarks>
internal sealed class OperatorLoginLimiter(TimeProvider time)
{
    /// <summary>Wrong tokens from one address within <see cref="Window"/> that lock it out.</summary>
    public const int MaxFailuresPerAddress = 5;

    /// <summary>Wrong tokens from all addresses together within <see cref="Window"/> that lock every address out.</summary>
    public const int MaxFailuresGlobal = 50;

    /// <summary>Addresses whose failures are tracked at once.</summary>
    public const int MaxAddresses = 1_024;

    /// <summary>The window in which failures are counted (from the first failure of a count).</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(5);

    /// <summary>How long token attempts are refused once a count reached its limit.</summary>
    public static readonly TimeSpan Lockout = TimeSpan.FromMinutes(5);

    private readonly Dictionary<string, Count> _addresses = new(StringComparer.Ordinal);
    private readonly Count _global = new();
    private readonly Lock _gate = new();

    /// <summary>Addresses tracked now (at most <see cref="MaxAddresses"/>).</summary>
    public int TrackedAddresses
    {
        get
        {
            lock (_gate)
            {
                return _addresses.Count;
            }
        }
    }

    /// <summary>True when <paramref name="remote"/>'s failures are in the table.</summary>
    public bool Tracks(IPAddress? remote)
    {
        lock (_gate)
        {
            return _addresses.ContainsKey(Key(remote));
        }
    }

    /// <summary>The key an address is counted under (IPv4-mapped IPv6 as IPv4; "?" when unknown).</summary>
    public static string Key(IPAddress? remote)
        => remote is null ? "?" : (remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote).ToString();

    /// <summary>The lockout in force for <paramref name="remote"/> now: null when it may present a token.</summary>
    public OperatorLockout? LockedOut(IPAddress? remote)
    {
        DateTimeOffset now = time.GetUtcNow();
        lock (_gate)
        {
            return Current(Key(remote), now);
        }
    }

    /// <summary>
    /// Counts a wrong token from <paramref name="remote"/>; returns the lockout it is now under (the one this failure
    /// started, with <see cref="OperatorLockout.Started"/> set, or one already in force), or null.
    /// </summary>
    public OperatorLockout? Failed(IPAddress? remote)
    {
        DateTimeOffset now = time.GetUtcNow();
        string key = Key(remote);
        lock (_gate)
        {
            if (!_addresses.TryGetValue(key, out Count? count))
            {
                MakeRoom(now);
                count = new Count();
                _addresses[key] = count;
            }

            count.LastFailure = now;
            bool addressLocked = count.Add(now, MaxFailuresPerAddress);
            bool globalLocked = _global.Add(now, MaxFailuresGlobal);
            OperatorLockout? current = Current(key, now);
            return current is null ? null : current with { Started = (current.Global ? globalLocked : addressLocked) };
        }
    }

    private OperatorLockout? Current(string key, DateTimeOffset now)
    {
        if (_global.LockedUntil > now)
        {
            return new OperatorLockout(Global: true, _global.LockedUntil - now, MaxFailuresGlobal, Started: false);
        }

        return _addresses.TryGetValue(key, out Count? count) && count.LockedUntil > now
            ? new OperatorLockout(Global: false, count.LockedUntil - now, MaxFailuresPerAddress, Started: false)
            : null;
    }

    private void MakeRoom(DateTimeOffset now)
    {
        if (_addresses.Count < MaxAddresses)
        {
            return;
        }

        foreach (KeyValuePair<string, Count> stale in _addresses.Where(a => a.Value.LockedUntil <= now && a.Value.Start + Window <= now).ToList())
        {
            _addresses.Remove(stale.Key);
        }

        while (_addresses.Count >= MaxAddresses)
        {
            // An address under lockout goes last: evicting it would give it fresh guesses at once.
            _addresses.Remove(_addresses.MinBy(a => (a.Value.LockedUntil > now, a.Value.LastFailure)).Key);
        }
    }

    /// <summary>One count of failures: a fixed window from its first failure, and the lockout it started.</summary>
    private sealed class Count
    {
        public DateTimeOffset Start { get; private set; } = DateTimeOffset.MinValue;

        public int Failures { get; private set; }

        public DateTimeOffset LockedUntil { get; private set; } = DateTimeOffset.MinValue;

        public DateTimeOffset LastFailure { get; set; }

        /// <summary>Counts a failure; true when it started a lockout.</summary>
        public bool Add(DateTimeOffset now, int limit)
        {
            if (LockedUntil > now)
            {
                return false; // already locked: attempts are refused before the token is checked, so this is rare (a race)
            }

            if (Start == DateTimeOffset.MinValue || now >= Start + Window)
            {
                Start = now;
                Failures = 0;
            }

            Failures++;
            if (Failures < limit)
            {
                return false;
            }

            // Locked: the next count starts afresh when the lockout ends.
            LockedUntil = now + Lockout;
            Start = DateTimeOffset.MinValue;
            Failures = 0;
            return true;
        }
    }
}
