using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace SecureFed.Aggregator;

/// <summary>
/// The per-caller token bucket behind <see cref="RefusalAudit"/> (the aggregator's audit lines) and the aggregator
/// cluster's fronts (their log lines): how many refusal lines one caller (the site, or how an unidentified caller was
/// named) can make a process write. Each caller's bucket holds <see cref="Burst"/> lines and gains one every
/// <see cref="RefillInterval"/>. A refusal that finds the bucket empty is still refused to the caller (that is the
/// caller's business), and counted by category: as soon as the bucket has a line again (a timer, or the caller's next
/// refusal, whichever comes first) the summary of the suppressed refusals is written once (how many, between which times,
/// of which kinds), and the count starts again. <see cref="Flush"/> writes every pending summary (at shutdown). One
/// caller's bucket never holds back another's lines. What a line is, and where it goes, is the owner's: this class only
/// decides whether to write it and when to summarise.
/// </summary>
internal sealed class RefusalRateLimiter : IDisposable
{
    /// <summary>Buckets kept before full, idle ones are dropped (a full bucket is the same as none).</summary>
    private const int MaxIdleBuckets = 1_024;

    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<string, SuppressedRefusals> _summarize;
    private readonly Dictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private bool _disposed;

    /// <summary>Creates the limiter.</summary>
    /// <param name="time">The clock of the buckets and of the summaries' timers.</param>
    /// <param name="burst">Refusal lines a caller's bucket holds (at least 1).</param>
    /// <param name="refillInterval">The time in which a bucket gains one line.</param>
    /// <param name="summarize">
    /// Writes the summary of a caller's suppressed refusals (called under the limiter's lock, at most once per pending
    /// count; if it throws, the count stays pending for the next attempt).
    /// </param>
    /// <param name="logger">Where a summary that failed in a timer is reported.</param>
    public RefusalRateLimiter(TimeProvider time, int burst, TimeSpan refillInterval, Action<string, SuppressedRefusals> summarize, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(refillInterval, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(summarize);
        _time = time;
        Burst = burst;
        RefillInterval = refillInterval;
        _summarize = summarize;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Refusal lines a caller can cause at once.</summary>
    public int Burst { get; }

    /// <summary>The time in which a caller's bucket gains one line.</summary>
    public TimeSpan RefillInterval { get; }

    /// <summary>
    /// Calls <paramref name="write"/> for <paramref name="caller"/>'s refusal, after the summary of its suppressed refusals
    /// if there are any; or, when its bucket is empty, only counts it under <paramref name="category"/>.
    /// </summary>
    /// <returns>True when the line was written; false when it was counted for a later summary.</returns>
    public bool TryWrite(string caller, string category, Action write)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(category);
        ArgumentNullException.ThrowIfNull(write);
        lock (_gate)
        {
            DateTimeOffset now = _time.GetUtcNow();
            if (!_buckets.TryGetValue(caller, out Bucket? bucket))
            {
                PruneIdle(now);
                bucket = new Bucket(Burst, now);
                _buckets.Add(caller, bucket);
            }

            bucket.Refill(now, Burst, RefillInterval);
            if (bucket.Tokens == 0)
            {
                bucket.Suppress(category, now);
                if (bucket.Timer is null && !_disposed)
                {
                    bucket.Timer = _time.CreateTimer(static s => ((Action)s!)(), (Action)(() => OnRefilled(caller)), bucket.UntilNextToken(now, RefillInterval), Timeout.InfiniteTimeSpan);
                }

                return false;
            }

            WriteSummary(caller, bucket);
            bucket.Tokens--;
            write();
            return true;
        }
    }

    /// <summary>Writes the summary of every caller's suppressed refusals now, whatever its bucket holds (at shutdown).</summary>
    public void Flush()
    {
        lock (_gate)
        {
            foreach ((string caller, Bucket bucket) in _buckets)
            {
                WriteSummary(caller, bucket);
            }
        }
    }

    /// <summary>Stops the summaries' timers (pending counts stay for <see cref="Flush"/>).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            foreach (Bucket bucket in _buckets.Values)
            {
                bucket.StopTimer();
            }
        }
    }

    private void OnRefilled(string caller)
    {
        lock (_gate)
        {
            if (_disposed || !_buckets.TryGetValue(caller, out Bucket? bucket))
            {
                return;
            }

            DateTimeOffset now = _time.GetUtcNow();
            bucket.Refill(now, Burst, RefillInterval);
            if (bucket.Tokens == 0)
            {
                bucket.Timer?.Change(bucket.UntilNextToken(now, RefillInterval), Timeout.InfiniteTimeSpan);
                return;
            }

            try
            {
                WriteSummary(caller, bucket);
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or ObjectDisposedException or UnauthorizedAccessException)
            {
                // The summary's destination failed (or was closed): the count stays pending for the caller's next refusal
                // or Flush; the failure itself surfaces where the owner writes its own lines.
                Log.RefusalSummaryFailed(_logger, caller, bucket.Suppressed, ex.Message);
            }
        }
    }

    /// <summary>Writes the caller's pending summary, if any, and resets the count (the line takes no token).</summary>
    private void WriteSummary(string caller, Bucket bucket)
    {
        bucket.StopTimer();
        if (bucket.Suppressed == 0)
        {
            return;
        }

        _summarize(caller, new SuppressedRefusals(bucket.Suppressed, bucket.FirstSuppressed, bucket.LastSuppressed, [.. bucket.Categories]));
        bucket.ClearSuppressed();
    }

    private void PruneIdle(DateTimeOffset now)
    {
        if (_buckets.Count < MaxIdleBuckets)
        {
            return;
        }

        foreach ((string caller, Bucket bucket) in _buckets.ToArray())
        {
            bucket.Refill(now, Burst, RefillInterval);
            if (bucket.Suppressed == 0 && bucket.Tokens == Burst)
            {
                _buckets.Remove(caller);
            }
        }
    }

    private sealed class Bucket(int tokens, DateTimeOffset refilled) : TokenBucket(tokens, refilled)
    {
        public long Suppressed { get; private set; }

        public DateTimeOffset FirstSuppressed { get; private set; }

        public DateTimeOffset LastSuppressed { get; private set; }

        public SortedDictionary<string, long> Categories { get; } = new(StringComparer.Ordinal);

        public ITimer? Timer { get; set; }

        public void Suppress(string category, DateTimeOffset now)
        {
            if (Suppressed == 0)
            {
                FirstSuppressed = now;
            }

            Suppressed++;
            LastSuppressed = now;
            Categories[category] = Categories.GetValueOrDefault(category) + 1;
        }

        public void ClearSuppressed()
        {
            Suppressed = 0;
            Categories.Clear();
        }

        public void StopTimer()
        {
            Timer?.Dispose();
            Timer = null;
        }
    }
}

/// <summary>A caller's refusals that were counted, not written: how many, the first and last one's time, and how many of each category (sorted).</summary>
internal sealed record SuppressedRefusals(long Count, DateTimeOffset Since, DateTimeOffset Until, IReadOnlyList<KeyValuePair<string, long>> Categories)
{
    /// <summary>A time as the summaries write it (UTC, 7 fractional digits).</summary>
    public static string Timestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
