using SecureFed.Wire.V1;

namespace SecureFed.Aggregator;

/// <summary>
/// The federation status <see cref="AggregationService.GetStatus"/> answers (the same for every site), built at most once
/// per <see cref="MaxAge"/> however many calls ask: a build reads the last <see cref="AggregationService.StatusRounds"/>
/// rounds under the round store's lock (about 50 queries), so a site looping status calls at its full call allowance
/// made the coordinator's own store writes queue behind its reads (hostile-site review, session 48). Concurrent callers
/// after the status aged wait for one build instead of each making their own.
/// </summary>
public sealed class FederationStatusCache
{
    /// <summary>How old an answered status may be.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(1);

    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private FederationStatus? _status;
    private long _builtAt;

    public FederationStatusCache(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
    }

    /// <summary>How many times a status was built (for tests and diagnostics).</summary>
    public long Builds { get; private set; }

    /// <summary>A copy of the status built by <paramref name="build"/> at most <see cref="MaxAge"/> ago, building it now if it is older.</summary>
    public FederationStatus Get(Func<FederationStatus> build)
    {
        ArgumentNullException.ThrowIfNull(build);
        lock (_gate)
        {
            if (_status is null || _time.GetElapsedTime(_builtAt) >= MaxAge)
            {
                _status = build();
                _builtAt = _time.GetTimestamp();
                Builds++;
            }

            return _status.Clone();
        }
    }
}
