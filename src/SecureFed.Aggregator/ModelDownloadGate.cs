using System.Globalization;

namespace SecureFed.Aggregator;

/// <summary>
/// How often one site may download a model (<c>DownloadModel</c>). An honest agent downloads each new model version
/// once (it keeps the model it trained from, in memory and in its data folder) and again only after a lost connection
/// or a restart; a hostile site could download without end, each download the whole model read from the round store,
/// hashed and sent (hostile-site review, session 55: bounded only by the calls a site may have in flight, 16 at a
/// time). So a site's first download of the current version is always let through, and every other download (the same
/// version again, or an older one) takes a token from the site's bucket: <see cref="Burst"/> at first, one more every
/// <see cref="RefillInterval"/>. A download refused here costs the aggregator a count, not a model.
/// </summary>
public sealed class ModelDownloadGate
{
    /// <summary>The default of <see cref="AggregatorOptions.ModelDownloadBurst"/>: 8 repeated downloads at once.</summary>
    public const int DefaultBurst = 8;

    /// <summary>The default of <see cref="AggregatorOptions.ModelDownloadRefillSeconds"/>: one more repeated download a minute.</summary>
    public const int DefaultRefillSeconds = 60;

    private readonly TimeProvider _time;
    private readonly Dictionary<string, Account> _accounts = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    /// <param name="burst">Repeated downloads a site may make at once (at least 1).</param>
    /// <param name="refillInterval">The time after which a site has one more repeated download (positive).</param>
    /// <param name="time">The clock.</param>
    public ModelDownloadGate(int burst, TimeSpan refillInterval, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(burst, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(refillInterval, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(time);
        Burst = burst;
        RefillInterval = refillInterval;
        _time = time;
    }

    public int Burst { get; }

    public TimeSpan RefillInterval { get; }

    /// <summary>
    /// Lets <paramref name="site"/>'s download of <paramref name="version"/> through (null) or says why not: its first
    /// download of <paramref name="currentVersion"/> always goes through; any other takes a token, if it has one.
    /// </summary>
    public string? TryStart(string site, long version, long currentVersion)
    {
        ArgumentNullException.ThrowIfNull(site);
        lock (_gate)
        {
            DateTimeOffset now = _time.GetUtcNow();
            if (!_accounts.TryGetValue(site, out Account? account))
            {
                account = new Account(Burst, now);
                _accounts.Add(site, account);
            }

            if (version == currentVersion && account.FreeVersion != currentVersion)
            {
                account.FreeVersion = currentVersion;
                return null;
            }

            account.Refill(now, Burst, RefillInterval);
            if (account.Tokens > 0)
            {
                account.Tokens--;
                return null;
            }

            return string.Create(CultureInfo.InvariantCulture,
                $"site '{site}' has downloaded model versions more often than the aggregator allows: each new version once, and up to {Burst} more downloads, one more every {RefillInterval.TotalSeconds:0.###} s (SecureFed:ModelDownloadBurst, SecureFed:ModelDownloadRefillSeconds); try again in {Math.Ceiling(account.UntilNextToken(now, RefillInterval).TotalSeconds):0} s");
        }
    }

    /// <summary>A site's bucket of repeated downloads, and the version it last downloaded for free.</summary>
    private sealed class Account(int tokens, DateTimeOffset refilled) : TokenBucket(tokens, refilled)
    {
        public long FreeVersion { get; set; } = -1;
    }
}
