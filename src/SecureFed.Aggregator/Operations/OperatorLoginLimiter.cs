using System.Diagnostics.CodeAnalysis;
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
/// A token is checked only inside an attempt: <see cref="TryBeginAttempt"/> reserves it under the lock, counting the
/// attempts being checked against both limits as if they had failed, and <see cref="Complete"/> counts it as a failure or
/// releases it. So however many requests arrive at once (their bodies read in parallel), at most
/// <see cref="MaxFailuresPerAddress"/> tokens from one address, and <see cref="MaxFailuresGlobal"/> in all, are checked
/// within a window before the lockout. A separate check of <see cref="LockedOut"/> before reading a body, then a count
/// after the token was compared, let every request whose headers came before the lockout have its token checked
/// (operator console review, session 61b).
/// </remarks>
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

    /// <summary>
    /// The <c>Retry-After</c> of an attempt refused because the attempts being checked at that moment, counted as failures,
    /// reach a limit: they end within moments, locking or not.
    /// </summary>
    public static readonly TimeSpan CheckingRetry = TimeSpan.FromSeconds(1);

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
    /// Reserves the check of one token from <paramref name="remote"/>, atomically with the check of the limits: true with
    /// an <paramref name="attempt"/> to <see cref="Complete"/> once the token was compared (in a <c>finally</c>); false with
    /// the lockout in force, or with a refusal because the attempts being checked now, counted as failures, reach a limit
    /// (<see cref="OperatorLockout.Checking"/>): then the token must not be checked.
    /// </summary>
    public bool TryBeginAttempt(IPAddress? remote, [NotNullWhen(true)] out Attempt? attempt, [NotNullWhen(false)] out OperatorLockout? refused)
    {
        DateTimeOffset now = time.GetUtcNow();
        string key = Key(remote);
        lock (_gate)
        {
            attempt = null;
            refused = Current(key, now);
            if (refused is not null)
            {
                return false;
            }

            if (_global.Failures(now) + _global.InFlight >= MaxFailuresGlobal)
            {
                refused = new OperatorLockout(Global: true, CheckingRetry, MaxFailuresGlobal, Started: false, Checking: _global.InFlight);
                return false;
            }

            Count? count = _addresses.GetValueOrDefault(key);
            if (count is not null && count.Failures(now) + count.InFlight >= MaxFailuresPerAddress)
            {
                refused = new OperatorLockout(Global: false, CheckingRetry, MaxFailuresPerAddress, Started: false, Checking: count.InFlight);
                return false;
            }

            if (count is null)
            {
                MakeRoom(now);
                count = new Count();
                _addresses[key] = count;
            }

            count.InFlight++;
            _global.InFlight++;
            attempt = new Attempt(key, count);
            return true;
        }
    }

    /// <summary>
    /// Ends <paramref name="attempt"/>: a right token (<paramref name="accepted"/>) is released without counting; a wrong
    /// one is counted as <see cref="Failed"/> counts it, and the lockout it is now under returned.
    /// </summary>
    public OperatorLockout? Complete(Attempt attempt, bool accepted)
    {
        ArgumentNullException.ThrowIfNull(attempt);
        DateTimeOffset now = time.GetUtcNow();
        lock (_gate)
        {
            if (attempt.Completed)
            {
                throw new InvalidOperationException($"The token attempt from {attempt.Key} was completed already.");
            }

            attempt.Completed = true;
            Count count = attempt.Count;
            count.InFlight--;
            _global.InFlight--;
            if (!accepted)
            {
                return CountFailure(attempt.Key, count, now);
            }

            if (count.InFlight == 0 && count.Failures(now) == 0 && count.LockedUntil <= now
                && _addresses.TryGetValue(attempt.Key, out Count? tracked) && ReferenceEquals(tracked, count))
            {
                // Only right tokens from this address: nothing to remember (the table is for failures).
                _addresses.Remove(attempt.Key);
            }

            return null;
        }
    }

    /// <summary>
    /// Counts a wrong token from <paramref name="remote"/>; returns the lockout it is now under (the one this failure
    /// started, with <see cref="OperatorLockout.Started"/> set, or one already in force), or null. The listener counts
    /// through <see cref="TryBeginAttempt"/> and <see cref="Complete"/>.
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

            return CountFailure(key, count, now);
        }
    }

    private OperatorLockout? CountFailure(string key, Count count, DateTimeOffset now)
    {
        count.LastFailure = now;
        bool addressLocked = count.Add(now, MaxFailuresPerAddress);
        bool globalLocked = _global.Add(now, MaxFailuresGlobal);
        OperatorLockout? current = Current(key, now);
        return current is null ? null : current with { Started = (current.Global ? globalLocked : addressLocked) };
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

        foreach (KeyValuePair<string, Count> stale in _addresses.Where(a => a.Value.InFlight == 0 && a.Value.LockedUntil <= now && a.Value.Start + Window <= now).ToList())
        {
            _addresses.Remove(stale.Key);
        }

        while (_addresses.Count >= MaxAddresses)
        {
            // An address under lockout or with tokens being checked goes last: evicting it would give it fresh guesses at once.
            _addresses.Remove(_addresses.MinBy(a => (a.Value.LockedUntil > now || a.Value.InFlight > 0, a.Value.LastFailure)).Key);
        }
    }

    /// <summary>One token check reserved by <see cref="TryBeginAttempt"/>, to be ended by <see cref="Complete"/> once.</summary>
    internal sealed class Attempt
    {
        internal Attempt(string key, Count count)
        {
            Key = key;
            Count = count;
        }

        /// <summary>The address the token came from, as counted (<see cref="Key(IPAddress?)"/>).</summary>
        public string Key { get; }

        internal Count Count { get; }

        internal bool Completed { get; set; }
    }

    /// <summary>One count of failures: a fixed window from its first failure, and the lockout it started.</summary>
    internal sealed class Count
    {
        public DateTimeOffset Start { get; private set; } = DateTimeOffset.MinValue;

        private int _failures;

        public DateTimeOffset LockedUntil { get; private set; } = DateTimeOffset.MinValue;

        public DateTimeOffset LastFailure { get; set; }

        /// <summary>Attempts begun and not completed: their tokens are being checked.</summary>
        public int InFlight { get; set; }

        /// <summary>The failures counted in the window in force at <paramref name="now"/> (0 once it has passed).</summary>
        public int Failures(DateTimeOffset now) => Start == DateTimeOffset.MinValue || now >= Start + Window ? 0 : _failures;

        /// <summary>Counts a failure; true when it started a lockout.</summary>
        public bool Add(DateTimeOffset now, int limit)
        {
            if (LockedUntil > now)
            {
                return false; // already locked: the listener refuses attempts before the token is checked (only a direct Failed gets here)
            }

            if (Start == DateTimeOffset.MinValue || now >= Start + Window)
            {
                Start = now;
                _failures = 0;
            }

            _failures++;
            if (_failures < limit)
            {
                return false;
            }

            // Locked: the next count starts afresh when the lockout ends.
            LockedUntil = now + Lockout;
            Start = DateTimeOffset.MinValue;
            _failures = 0;
            return true;
        }
    }
}
