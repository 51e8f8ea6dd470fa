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
/// The bucket logic is <see cref="RefusalRateLimiter"/>, shared with the aggregator cluster's fronts (which log their
/// refusals instead of auditing them).
/// </remarks>
internal sealed class RefusalAudit : IDisposable
{
    /// <summary>Refusal lines a caller's bucket holds. <value>The default value is 32.</value></summary>
    public const int DefaultBurst = 32;

    /// <summary>One refusal line more every 10 seconds (6 a minute).</summary>
    public static readonly TimeSpan DefaultRefillInterval = TimeSpan.FromSeconds(10);

    private readonly AuditLog _audit;
    private readonly ILogger _logger;
    private readonly RefusalRateLimiter _limiter;

    public RefusalAudit(AuditLog audit, TimeProvider time, ILogger<RefusalAudit>? logger)
        : this(audit, time, logger, DefaultBurst, DefaultRefillInterval)
    {
    }

    public RefusalAudit(AuditLog audit, TimeProvider time, ILogger? logger, int burst, TimeSpan refillInterval)
    {
        ArgumentNullException.ThrowIfNull(audit);
        ArgumentNullException.ThrowIfNull(time);
        _audit = audit;
        _logger = logger ?? NullLogger.Instance;
        _limiter = new RefusalRateLimiter(time, burst, refillInterval, WriteSummary, _logger);
    }

    /// <summary>Refusal lines a caller can cause at once.</summary>
    public int Burst => _limiter.Burst;

    /// <summary>The time in which a caller's bucket gains one line.</summary>
    public TimeSpan RefillInterval => _limiter.RefillInterval;

    /// <summary>
    /// Writes the refusal line filled by <paramref name="fields"/> for <paramref name="caller"/>, after the summary of its
    /// suppressed refusals if there are any; or, when its bucket is empty, only counts it under <paramref name="category"/>.
    /// </summary>
    /// <returns>True when the line was written; false when it was counted for a later summary.</returns>
    public bool Append(string caller, string category, Action<AuditFields> fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        return _limiter.TryWrite(caller, category, () => _audit.Append(AuditEvents.Refusal, fields));
    }

    /// <summary>Writes the summary of every caller's suppressed refusals now, whatever its bucket holds (at shutdown).</summary>
    public void Flush() => _limiter.Flush();

    public void Dispose() => _limiter.Dispose();

    /// <summary>The <see cref="AuditEvents.RefusalsSuppressed"/> line of a caller's suppressed refusals (the line takes no token).</summary>
    private void WriteSummary(string caller, SuppressedRefusals suppressed)
    {
        _audit.Append(AuditEvents.RefusalsSuppressed, f => f
            .Add("site", caller)
            .Add("suppressed", suppressed.Count)
            .Add("since", SuppressedRefusals.Timestamp(suppressed.Since))
            .Add("until", SuppressedRefusals.Timestamp(suppressed.Until))
            .AddObject("categories", c =>
            {
                foreach ((string category, long count) in suppressed.Categories)
                {
                    c.Add(category, count);
                }
            })
            .Add("burst", Burst)
            .Add("refill_seconds", RefillInterval.TotalSeconds));
        Log.RefusalsSuppressed(_logger, suppressed.Count, caller, SuppressedRefusals.Timestamp(suppressed.Since), SuppressedRefusals.Timestamp(suppressed.Until));
    }
}
