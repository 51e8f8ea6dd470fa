using System.Net;
using Microsoft.Extensions.Time.Testing;
using SecureFed.Aggregator.Operations;

namespace SecureFed.Federation.Tests;

/// <summary>
/// <see cref="OperatorLoginLimiter"/>: wrong operator tokens lock out their address (and, past the global limit, every
/// address) for <see cref="OperatorLoginLimiter.Lockout"/>; other addresses are not affected; a right token does not
/// reset a count; the per-address table stays bounded under a flood of source addresses. Deterministic: the clock is a
/// <see cref="FakeTimeProvider"/>. Before the limiter the admin listener checked every guess at full speed.
/// </summary>
public sealed class OperatorLoginLimiterTests
{
    private static readonly IPAddress Attacker = IPAddress.Parse("127.0.0.1");
    private static readonly IPAddress Operator = IPAddress.Parse("127.0.0.2");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 7, 6, 0, 0, TimeSpan.Zero));
    private readonly OperatorLoginLimiter _limiter;

    public OperatorLoginLimiterTests() => _limiter = new OperatorLoginLimiter(_time);

    [Fact]
    public void Failed_LimitReached_AddressLockedForTheLockoutThenFree_OtherAddressesUnaffected()
    {
        for (int i = 1; i < OperatorLoginLimiter.MaxFailuresPerAddress; i++)
        {
            Assert.Null(_limiter.Failed(Attacker));
            Assert.Null(_limiter.LockedOut(Attacker));
            _time.Advance(TimeSpan.FromSeconds(10));
        }

        OperatorLockout started = Assert.IsType<OperatorLockout>(_limiter.Failed(Attacker));
        Assert.True(started.Started);
        Assert.False(started.Global);
        Assert.Equal((long)OperatorLoginLimiter.Lockout.TotalSeconds, started.RetryAfterSeconds);
        Assert.Contains("the right token too", started.Message, StringComparison.Ordinal);

        // Refused until the lockout has passed (whatever the token: the caller refuses before checking it).
        _time.Advance(OperatorLoginLimiter.Lockout - TimeSpan.FromSeconds(1.5));
        OperatorLockout still = Assert.IsType<OperatorLockout>(_limiter.LockedOut(Attacker));
        Assert.Equal(2, still.RetryAfterSeconds); // 1.5 s rounded up
        Assert.False(still.Started);
        Assert.Null(_limiter.LockedOut(Operator));
        Assert.Null(_limiter.LockedOut(IPAddress.Parse("::ffff:127.0.0.2")));
        Assert.NotNull(_limiter.LockedOut(IPAddress.Parse("::ffff:127.0.0.1"))); // the same address, IPv4-mapped

        _time.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Null(_limiter.LockedOut(Attacker));

        // A fresh count after the lockout: one more failure does not lock again.
        Assert.Null(_limiter.Failed(Attacker));
        Assert.Null(_limiter.LockedOut(Attacker));
    }

    [Fact]
    public void Failed_SpreadOverMoreThanTheWindow_NeverLocks()
    {
        for (int i = 0; i < 4 * OperatorLoginLimiter.MaxFailuresPerAddress; i++)
        {
            Assert.Null(_limiter.Failed(Attacker));
            _time.Advance(OperatorLoginLimiter.Window / (OperatorLoginLimiter.MaxFailuresPerAddress - 1));
        }
    }

    [Fact]
    public void Failed_GlobalLimitFromManyAddresses_LocksEveryAddress()
    {
        int addresses = OperatorLoginLimiter.MaxFailuresGlobal / (OperatorLoginLimiter.MaxFailuresPerAddress - 1) + 1;
        OperatorLockout? last = null;
        int failures = 0;
        for (int a = 0; a < addresses && last is null; a++)
        {
            for (int i = 1; i < OperatorLoginLimiter.MaxFailuresPerAddress && last is null; i++)
            {
                last = _limiter.Failed(new IPAddress([127, 1, 0, (byte)a]));
                failures++;
            }
        }

        Assert.Equal(OperatorLoginLimiter.MaxFailuresGlobal, failures);
        OperatorLockout global = Assert.IsType<OperatorLockout>(last);
        Assert.True(global.Global);
        Assert.True(global.Started);
        Assert.Contains("from all addresses", global.Message, StringComparison.Ordinal);
        Assert.True(Assert.IsType<OperatorLockout>(_limiter.LockedOut(Operator)).Global); // never failed, locked all the same

        _time.Advance(OperatorLoginLimiter.Lockout);
        Assert.Null(_limiter.LockedOut(Operator));
    }

    [Fact]
    public void Failed_FloodOfSourceAddresses_TableBoundedAndGlobalCountLocks()
    {
        // One failure from each of many addresses within one window (direct calls: the listener would refuse them
        // unchecked once the global lockout began, but the table must stay bounded whoever calls).
        int lockedAt = 0;
        for (int a = 0; a < 3 * OperatorLoginLimiter.MaxAddresses; a++)
        {
            if (_limiter.Failed(new IPAddress([127, 200, (byte)(a >> 8), (byte)a])) is { Global: true } && lockedAt == 0)
            {
                lockedAt = a + 1;
            }

            Assert.InRange(_limiter.TrackedAddresses, 1, OperatorLoginLimiter.MaxAddresses);
        }

        Assert.Equal(OperatorLoginLimiter.MaxFailuresGlobal, lockedAt);
        Assert.Equal(OperatorLoginLimiter.MaxAddresses, _limiter.TrackedAddresses);

        // Once every entry's window and lockout have passed, a new address makes room by dropping the stale ones.
        _time.Advance(OperatorLoginLimiter.Window + OperatorLoginLimiter.Lockout);
        Assert.Null(_limiter.Failed(Operator));
        Assert.Equal(1, _limiter.TrackedAddresses);
    }

    [Fact]
    public void Failed_TableFull_LockedOutAddressEvictedLast()
    {
        for (int i = 0; i < OperatorLoginLimiter.MaxFailuresPerAddress; i++)
        {
            _limiter.Failed(Attacker);
        }

        Assert.NotNull(_limiter.LockedOut(Attacker));
        _time.Advance(TimeSpan.FromSeconds(1));

        // Fill the table with newer single failures, and more: the oldest entry is the locked-out address, yet the
        // unlocked ones go first (evicting it would give it fresh guesses at once).
        for (int a = 0; a < 2 * OperatorLoginLimiter.MaxAddresses; a++)
        {
            _limiter.Failed(new IPAddress([127, 9, (byte)(a >> 8), (byte)a]));
        }

        Assert.Equal(OperatorLoginLimiter.MaxAddresses, _limiter.TrackedAddresses);
        Assert.True(_limiter.Tracks(Attacker));
        Assert.False(_limiter.Tracks(new IPAddress([127, 9, 0, 0])));
    }

    /// <summary>
    /// Many requests from one address whose bodies were all read before any token was compared (the interleaving of an
    /// attacker who opens many connections, sends every request's headers, then every body): only
    /// <see cref="OperatorLoginLimiter.MaxFailuresPerAddress"/> get to have their token checked; the rest are refused
    /// unchecked. Before the fix the listener checked <see cref="OperatorLoginLimiter.LockedOut"/> before reading the body
    /// and counted after comparing, so all of them were compared although the lockout started at the fifth
    /// (operator console review, session 61b).
    /// </summary>
    [Fact]
    public void TryBeginAttempt_ManyAttemptsBegunBeforeAnyCompletes_AtMostTheLimitChecked()
    {
        var admitted = new List<OperatorLoginLimiter.Attempt>();
        var refusals = new List<OperatorLockout>();
        for (int i = 0; i < 2_000; i++)
        {
            if (_limiter.TryBeginAttempt(Attacker, out OperatorLoginLimiter.Attempt? attempt, out OperatorLockout? refused))
            {
                admitted.Add(attempt);
            }
            else
            {
                refusals.Add(refused);
            }
        }

        Assert.Equal(OperatorLoginLimiter.MaxFailuresPerAddress, admitted.Count);
        OperatorLockout checking = refusals[0];
        Assert.Equal((false, OperatorLoginLimiter.MaxFailuresPerAddress, 1L), (checking.Global, checking.Checking, checking.RetryAfterSeconds));
        Assert.Contains("being checked now", checking.Message, StringComparison.Ordinal);

        // Another address is not held up by them.
        Assert.True(_limiter.TryBeginAttempt(Operator, out OperatorLoginLimiter.Attempt? other, out _));
        Assert.Null(_limiter.Complete(other, accepted: true));

        // All wrong: the last one counted starts the lockout; then nothing is admitted, for the lockout's length.
        OperatorLockout?[] results = admitted.Select(a => _limiter.Complete(a, accepted: false)).ToArray();
        Assert.All(results[..^1], Assert.Null);
        Assert.True(Assert.IsType<OperatorLockout>(results[^1]).Started);
        Assert.False(_limiter.TryBeginAttempt(Attacker, out _, out OperatorLockout? locked));
        Assert.Equal((0, (long)OperatorLoginLimiter.Lockout.TotalSeconds), (locked.Checking, locked.RetryAfterSeconds));
    }

    /// <summary>
    /// The same on threads: many threads begin an attempt for one address at once (a <see cref="Barrier"/> releases them
    /// together), all wait until every one has begun, then "compare" a wrong token and complete. At most
    /// <see cref="OperatorLoginLimiter.MaxFailuresPerAddress"/> comparisons happen, whatever the interleaving.
    /// </summary>
    [Fact]
    public void TryBeginAttempt_ManyThreadsAtOnce_AtMostTheLimitCompared()
    {
        const int Threads = 32;
        int compared = 0;
        using var start = new Barrier(Threads);
        using var begun = new Barrier(Threads);
        Exception? failure = null;
        Thread[] threads = Enumerable.Range(0, Threads).Select(i => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                bool admitted = _limiter.TryBeginAttempt(Attacker, out OperatorLoginLimiter.Attempt? attempt, out _);
                begun.SignalAndWait(); // every body read before any token is compared
                if (admitted)
                {
                    Interlocked.Increment(ref compared);
                    _limiter.Complete(attempt!, accepted: false);
                }
            }
            catch (Exception ex)
            {
                Interlocked.CompareExchange(ref failure, ex, null);
            }
        })).ToArray();
        foreach (Thread thread in threads)
        {
            thread.Start();
        }

        foreach (Thread thread in threads)
        {
            Assert.True(thread.Join(TimeSpan.FromSeconds(60)), "a thread did not finish");
        }

        Assert.Null(failure);
        Assert.Equal(OperatorLoginLimiter.MaxFailuresPerAddress, compared);
        Assert.NotNull(_limiter.LockedOut(Attacker));
    }

    /// <summary>Attempts in flight from many addresses count against the global limit too: at most it are checked.</summary>
    [Fact]
    public void TryBeginAttempt_ManyAddressesBegunBeforeAnyCompletes_AtMostTheGlobalLimitChecked()
    {
        var admitted = new List<OperatorLoginLimiter.Attempt>();
        for (int a = 0; a < 3 * OperatorLoginLimiter.MaxFailuresGlobal; a++)
        {
            if (_limiter.TryBeginAttempt(new IPAddress([127, 1, 0, (byte)a]), out OperatorLoginLimiter.Attempt? attempt, out OperatorLockout? refused))
            {
                admitted.Add(attempt);
            }
            else
            {
                Assert.True(refused.Global);
            }
        }

        Assert.Equal(OperatorLoginLimiter.MaxFailuresGlobal, admitted.Count);
        Assert.True(admitted.Select(a => _limiter.Complete(a, accepted: false)).ToArray()[^1] is { Global: true, Started: true });
        Assert.True(Assert.IsType<OperatorLockout>(_limiter.LockedOut(Operator)).Global);
    }

    /// <summary>
    /// A right token in flight is released, not counted: with four failures counted, the fifth attempt (the right token)
    /// does not lock; an address that only ever presented the right token is not kept in the table; an attempt completes once.
    /// </summary>
    [Fact]
    public void Complete_RightToken_ReleasedNotCountedAndNotTracked()
    {
        for (int i = 1; i < OperatorLoginLimiter.MaxFailuresPerAddress; i++)
        {
            Assert.True(_limiter.TryBeginAttempt(Attacker, out OperatorLoginLimiter.Attempt? wrong, out _));
            Assert.Null(_limiter.Complete(wrong, accepted: false));
        }

        Assert.True(_limiter.TryBeginAttempt(Attacker, out OperatorLoginLimiter.Attempt? right, out _));
        Assert.False(_limiter.TryBeginAttempt(Attacker, out _, out OperatorLockout? checking)); // the fifth is being checked
        Assert.Equal(1, checking.Checking);
        Assert.Null(_limiter.Complete(right, accepted: true));
        Assert.Null(_limiter.LockedOut(Attacker));
        Assert.True(_limiter.TryBeginAttempt(Attacker, out OperatorLoginLimiter.Attempt? last, out _));
        Assert.True(Assert.IsType<OperatorLockout>(_limiter.Complete(last, accepted: false)).Started);

        Assert.True(_limiter.TryBeginAttempt(Operator, out OperatorLoginLimiter.Attempt? scrape, out _));
        Assert.True(_limiter.Tracks(Operator));
        Assert.Null(_limiter.Complete(scrape, accepted: true));
        Assert.False(_limiter.Tracks(Operator));
        InvalidOperationException twice = Assert.Throws<InvalidOperationException>(() => _limiter.Complete(scrape, accepted: true));
        Assert.Contains("127.0.0.2", twice.Message, StringComparison.Ordinal);
    }
}
