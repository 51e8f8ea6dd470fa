namespace SecureFed.Aggregator;

/// <summary>
/// A token bucket of one caller: at most a burst of tokens, one more every interval (the caller passes both, so one
/// limiter's settings hold for all its buckets). Used by <see cref="RefusalRateLimiter"/> (refusal lines a caller can make
/// a process write) and <see cref="ModelDownloadGate"/> (repeated model downloads). Not thread-safe: its owner locks.
/// </summary>
/// <param name="tokens">The tokens at first (the burst).</param>
/// <param name="refilled">When the bucket was last refilled (its creation).</param>
internal class TokenBucket(int tokens, DateTimeOffset refilled)
{
    public int Tokens { get; set; } = tokens;

    public DateTimeOffset Refilled { get; private set; } = refilled;

    /// <summary>
    /// Adds the tokens earned since <see cref="Refilled"/>, one per <paramref name="interval"/>, up to
    /// <paramref name="burst"/>; a bucket that reaches the burst counts its next token from <paramref name="now"/>.
    /// </summary>
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

    /// <summary>How long until the next token (zero when it is due).</summary>
    public TimeSpan UntilNextToken(DateTimeOffset now, TimeSpan interval)
    {
        TimeSpan left = Refilled + interval - now;
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }
}
