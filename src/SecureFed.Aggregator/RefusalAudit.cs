using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SecureFed.Audit;

namespace SecureFed.Aggregator;

/// <summary>
/// Bounds how many <see cref="AuditEvents.Refusal"/> lines one caller can make the aggregator write (each is a line on
/// disk with an fsync and a leaf kept in memory): a token bucket per caller (the site, or how an unidentified caller
/// was named) holds <see cref="Burst"/> lines and gains one every <see cref="RefillInterval"/>. A refusal that finds the
/// bucket empty is still refused to the caller, and counted: as soon as the bucket has a line again (a timer, or the
/// caller's next refusal, whichever comes first) one <see cref="AuditEvents.RefusalsSuppressed"/> line states how many
/// refusals of that caller were not written, between which times, and of which kinds. Nothing is lost at shutdown:
/// <see cref="Flush"/> writes every pending count. One caller's bucket never holds back another's lines.
/// </summary>
/// <remarks>
/// Declines (a cohort member's "site declined: …", read by the audit report) are not refusals of a message and do not
/// go through here: a site's first decline in an attempt is one line, its repeats in that attempt none. With the
/// defaults a caller that is refused without pause gets 32 lines at once, then at most two lines (a refusal and a
/// summary) every 10 seconds.
/// </remarks>
internal sealed class RefusalAudit : IDisposable
{
    /// <summary>Refusal lines a caller's bucket holds. <value>The default value is 32.</value></summary>
    public const int DefaultBurst = 32;

    /// <summary>Buckets kept before full, idle ones are dropped (a full bucket is the same as none).</summary>
    private const int MaxIdleBuckets = 1_024;

    /// <summary>One refusal line more every 10 seconds (6 a minute).</summary>
    public static readonly TimeSpan DefaultRefillInterval = TimeSpan.FromSeconds(10);

    private readonly AuditLog _audit;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private bool _disposed;

    public RefusalAudit(AuditLog audit, TimeProvider time, ILogger<RefusalAudit>? logger)
        : this(audit, time, logger, DefaultBurst, DefaultRefillInterval)
    {
    }

    public RefusalAudit(AuditLog audit, TimeProvider time, ILogger? logger, int burst, TimeSpan refillInterval)
    {
        ArgumentNullException.ThrowIfNull(audit);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(refillInterval, TimeSpan.Zero);
        _audit = audit;
        _time = time;
        _logger = logger ?? NullLogger.Instance;
        Burst = burst;
        RefillInterval = refillInterval;
    }

    /// <summary>Refusal lines a caller can cause at once.</summary>
    public int Burst { get; }

    /// <summary>The time in which a caller's bucket gains one line.</summary>
    public TimeSpan RefillInterval { get; }

    /// <summary>
    /// Writes the refusal line filled by <paramref name="fields"/> for <paramref name="caller"/>, after the summary of its
    /// suppressed refusals if there are any; or, when its bucket is empty, only counts it under <paramref name="category"/>.
    /// </summary>
    /// <returns>True when the line was written; false when it was counted for a later summary.</returns>
    public bool Append(string caller, string category, Action<AuditFields> fields)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(category);
        ArgumentNullException.ThrowIfNull(fields);
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
            _audit.Append(AuditEvents.Refusal, fields);
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
                // The audit log failed (or was closed): the count stays pending for the caller's next refusal or Flush;
                // the failure itself surfaces where the aggregator writes its own lines.
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

        long suppressed = bucket.Suppressed;
        DateTimeOffset since = bucket.FirstSuppressed;
        DateTimeOffset until = bucket.LastSuppressed;
        KeyValuePair<string, long>[] categories = [.. bucket.Categories];
        _audit.Append(AuditEvents.RefusalsSuppressed, f => f
            .Add("site", caller)
            .Add("suppressed", suppressed)
            .Add("since", Timestamp(since))
            .Add("until", Timestamp(until))
            .AddObject("categories", c =>
            {
                foreach ((string category, long count) in categories)
                {
                    c.Add(category, count);
                }
            })
            .Add("burst", Burst)
            .Add("refill_seconds", RefillInterval.TotalSeconds));
        bucket.ClearSuppressed();
        Log.RefusalsSuppressed(_logger, suppressed, caller, Timestamp(since), Timestamp(until));
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

    private static string Timestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private sealed class Bucket(int tokens, DateTimeOffset refilled)
    {
        public int Tokens { get; set; } = tokens;

        public DateTimeOffset Refilled { get; private set; } = refilled;

        public long Suppressed { get; private set; }

        public DateTimeOffset FirstSuppressed { get; private set; }

        public DateTimeOffset LastSuppressed { get; private set; }

        public SortedDictionary<string, long> Categories { get; } = new(StringComparer.Ordinal);

        public ITimer? Timer { get; set; }

        public void Refill(DateTimeOffset now, int burst, TimeSpan interval)
        {
            if (now <= Refilled)
            {
                return;
            }

            long gained = (now - Refilled).Ticks / interval.Ticks;
            if (Tokens + gained >= burst)
            {
                Tokens = burst;
                Refilled = now;
            }
            else if (gained > 0)
            {
                Tokens += (int)gained;
                Refilled += interval * gained;
            }
        }

        public TimeSpan UntilNextToken(DateTimeOffset now, TimeSpan interval)
        {
            TimeSpan left = Refilled + interval - now;
            return left > TimeSpan.Zero ? left : TimeSpan.Zero;
        }

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
