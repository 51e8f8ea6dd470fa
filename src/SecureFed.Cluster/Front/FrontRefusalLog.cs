using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;

namespace SecureFed.Cluster.Front;

/// <summary>
/// The refusal lines of a silo's front (<see cref="SiloFrontService"/> and its <see cref="BulkCallGate"/>), bounded per
/// site as the coordinator bounds its audited refusals (<see cref="RefusalAudit"/>, the same <see cref="RefusalRateLimiter"/>):
/// a site gets <see cref="RefusalAudit.DefaultBurst"/> warning lines at once, then one more every
/// <see cref="RefusalAudit.DefaultRefillInterval"/>; the refusals beyond that are still refused to the site, counted by
/// status code, and logged as one summary line ("N refusals of site … were not logged one by one …") as soon as the
/// site's bucket has a line again, and at <see cref="Dispose"/>. One site's refusals never hold back another's lines.
/// A front has no audit log (the audit log is the coordinator's): these lines are the silo's journal. The front's
/// <see cref="CoordinatorForwarder"/> keeps one of its own for its Unavailable answers (the coordinator unreachable).
/// </summary>
public sealed partial class FrontRefusalLog : IDisposable
{
    private readonly ILogger _logger;
    private readonly RefusalRateLimiter _limiter;
    private readonly bool _unavailable;

    /// <summary>A log with the coordinator's defaults (32 lines at once, one more every 10 s).</summary>
    public FrontRefusalLog(ILogger logger, TimeProvider time)
        : this(logger, time, RefusalAudit.DefaultBurst, RefusalAudit.DefaultRefillInterval)
    {
    }

    /// <summary>A log whose buckets hold <paramref name="burst"/> lines and gain one every <paramref name="refillInterval"/>.</summary>
    public FrontRefusalLog(ILogger logger, TimeProvider time, int burst, TimeSpan refillInterval)
        : this(logger, time, burst, refillInterval, unavailable: false)
    {
    }

    private FrontRefusalLog(ILogger logger, TimeProvider time, int burst, TimeSpan refillInterval, bool unavailable)
    {
        ArgumentNullException.ThrowIfNull(logger);
        _logger = logger;
        _unavailable = unavailable;
        _limiter = new RefusalRateLimiter(time, burst, refillInterval, WriteSummary, logger);
    }

    /// <summary>
    /// A log of a front's Unavailable answers (the coordinator could not be located or reached), with the same per-site
    /// shares; its summary line says what was not logged without calling it the site's refusals.
    /// </summary>
    public static FrontRefusalLog ForUnavailable(ILogger logger, TimeProvider time)
        => new(logger, time, RefusalAudit.DefaultBurst, RefusalAudit.DefaultRefillInterval, unavailable: true);

    /// <summary>
    /// Logs <paramref name="site"/>'s refusal (status <paramref name="code"/>, <paramref name="reason"/>) at warning level
    /// when its bucket has a line, else counts it for the site's next summary.
    /// </summary>
    /// <returns>True when the line was logged.</returns>
    public bool Refused(string site, string code, string reason)
        => _limiter.TryWrite(site, code, () => Log.Refused(_logger, site, code, reason));

    /// <summary>
    /// Whether a refusal of <paramref name="site"/> that the caller logs itself (the bulk-call gate's own line) may be
    /// logged now; counted under <paramref name="code"/> for the site's next summary when not.
    /// </summary>
    public bool MayLog(string site, string code) => _limiter.TryWrite(site, code, static () => { });

    /// <summary>Logs every pending summary now (at shutdown).</summary>
    public void Flush() => _limiter.Flush();

    /// <summary>Stops the summaries' timers and logs every pending summary.</summary>
    public void Dispose()
    {
        _limiter.Dispose();
        _limiter.Flush();
    }

    private void WriteSummary(string site, SuppressedRefusals suppressed)
    {
        string since = SuppressedRefusals.Timestamp(suppressed.Since);
        string until = SuppressedRefusals.Timestamp(suppressed.Until);
        string codes = string.Join(", ", suppressed.Categories.Select(c => $"{c.Key} {c.Value}"));
        if (_unavailable)
        {
            Log.UnavailableSuppressed(_logger, suppressed.Count, site, since, until, codes);
        }
        else
        {
            Log.Suppressed(_logger, suppressed.Count, site, since, until, codes);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Slice upload from {Site} refused ({Code}): {Reason}")]
        public static partial void Refused(ILogger logger, string site, string code, string reason);

        [LoggerMessage(3, LogLevel.Warning, "{Count} refusals of {Site} were not logged one by one (too many; refused all the same) between {Since} and {Until}: {Codes}")]
        public static partial void Suppressed(ILogger logger, long count, string site, string since, string until, string codes);

        [LoggerMessage(4, LogLevel.Warning, "{Count} calls of {Site} answered Unavailable (the coordinator could not be located or reached) were not logged one by one between {Since} and {Until}: {Codes}")]
        public static partial void UnavailableSuppressed(ILogger logger, long count, string site, string since, string until, string codes);
    }
}
