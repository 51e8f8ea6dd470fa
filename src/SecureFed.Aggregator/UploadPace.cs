using System.Globalization;
using Grpc.Core;
using SecureFed.Wire.V1;

namespace SecureFed.Aggregator;

/// <summary>
/// The slowest a site's masked-input uploads may be while they hold an upload slot (<see cref="UploadLimiter"/>): in one
/// round attempt, the time a site's uploads have held a slot may exceed <see cref="GraceSeconds"/> by at most the time
/// their words earn at <see cref="WordsPerSecond"/>. An upload that falls behind is ended
/// (<see cref="UploadTooSlowException"/>) and its slot given back; the account is the site's, not the upload's, so a site
/// that opens upload after upload and stalls or trickles (slow-loris) gets no fresh grace with each: once behind, its
/// next upload of the attempt is refused at its first read. Sites colluding to hold every slot thus hold them for about
/// the grace, not until the stage closes; an honest upload, sent as fast as its link allows, is far ahead of the floor
/// (docs/PROTOCOL.md §5, "Upload rules").
/// </summary>
public sealed class UploadPace
{
    /// <summary>The default of <see cref="AggregatorOptions.MinUploadWordsPerSecond"/>: 16,384 words (64 KiB) a second.</summary>
    public const int DefaultWordsPerSecond = 16_384;

    /// <summary>The default of <see cref="AggregatorOptions.UploadGraceSeconds"/>.</summary>
    public const int DefaultGraceSeconds = 30;

    /// <summary>Accounts kept before those unused for an hour are dropped.</summary>
    private const int PruneAbove = 4_096;

    private readonly TimeProvider _time;
    private readonly Dictionary<(string Attempt, string Site), Account> _accounts = [];

    /// <param name="wordsPerSecond">The floor, in 32-bit words a second; 0 turns it off.</param>
    /// <param name="graceSeconds">How long a site's uploads may hold a slot in an attempt before the floor applies.</param>
    /// <param name="time">The clock (tests use a fake one).</param>
    public UploadPace(int wordsPerSecond, int graceSeconds, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(wordsPerSecond);
        ArgumentOutOfRangeException.ThrowIfNegative(graceSeconds);
        WordsPerSecond = wordsPerSecond;
        GraceSeconds = graceSeconds;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The floor in words a second (0: off).</summary>
    public int WordsPerSecond { get; }

    /// <summary>Seconds a site's uploads may hold a slot in one attempt before the floor applies.</summary>
    public int GraceSeconds { get; }

    /// <summary>
    /// <paramref name="stream"/>, an upload of <paramref name="site"/> in round attempt <paramref name="attempt"/> (its
    /// session id) that holds a slot from now on: a <c>MoveNext</c> that has not returned by the time the site's account
    /// allows throws <see cref="UploadTooSlowException"/>. <paramref name="wordsSoFar"/> (the first chunk's, read before
    /// the slot) count. The stream itself when the floor is off.
    /// </summary>
    public IAsyncStreamReader<MaskedInputChunk> Watch(IAsyncStreamReader<MaskedInputChunk> stream, string attempt, string site, long wordsSoFar)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(attempt);
        ArgumentNullException.ThrowIfNull(site);
        if (WordsPerSecond == 0)
        {
            return stream;
        }

        Account account = AccountOf(attempt, site);
        account.Add(wordsSoFar, TimeSpan.Zero);
        return new PacedReader(this, stream, account);
    }

    private Account AccountOf(string attempt, string site)
    {
        DateTimeOffset now = _time.GetUtcNow();
        lock (_accounts)
        {
            if (_accounts.Count > PruneAbove)
            {
                foreach (var stale in _accounts.Where(a => now - a.Value.LastUsed > TimeSpan.FromHours(1)).Select(a => a.Key).ToList())
                {
                    _accounts.Remove(stale);
                }
            }

            if (!_accounts.TryGetValue((attempt, site), out Account? account))
            {
                account = new Account();
                _accounts[(attempt, site)] = account;
            }

            account.LastUsed = now;
            return account;
        }
    }

    /// <summary>One site's uploads in one attempt: the time they held a slot and the words they delivered.</summary>
    private sealed class Account
    {
        private readonly Lock _lock = new();
        private TimeSpan _held;
        private long _words;

        public DateTimeOffset LastUsed { get; set; }

        public (TimeSpan Held, long Words) Read()
        {
            lock (_lock)
            {
                return (_held, _words);
            }
        }

        public void Add(long words, TimeSpan held)
        {
            lock (_lock)
            {
                _words += words;
                _held += held;
            }
        }
    }

    private sealed class PacedReader(UploadPace pace, IAsyncStreamReader<MaskedInputChunk> inner, Account account) : IAsyncStreamReader<MaskedInputChunk>
    {
        private DateTimeOffset _mark = pace._time.GetUtcNow();

        public MaskedInputChunk Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            TimeSpan left = Left();
            if (left <= TimeSpan.Zero)
            {
                throw TooSlow();
            }

            using var behind = new CancellationTokenSource(left, pace._time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, behind.Token);
            try
            {
                bool more = await inner.MoveNext(linked.Token).ConfigureAwait(false);
                Held(more ? inner.Current.Words.Count : 0);
                return more;
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException && behind.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                // (A read cancelled under Kestrel may surface as the connection's IOException.)
                throw TooSlow();
            }
        }

        /// <summary>How long the next chunk may take: the grace plus what the words earned, less the time already held.</summary>
        private TimeSpan Left()
        {
            (TimeSpan held, long words) = account.Read();
            TimeSpan allowed = TimeSpan.FromSeconds(pace.GraceSeconds + ((double)words / pace.WordsPerSecond));
            return allowed - held - (pace._time.GetUtcNow() - _mark);
        }

        /// <summary>Books the time since the last mark (and <paramref name="words"/>) to the site's account.</summary>
        private void Held(long words)
        {
            DateTimeOffset now = pace._time.GetUtcNow();
            account.Add(words, now - _mark);
            _mark = now;
        }

        private UploadTooSlowException TooSlow()
        {
            Held(0);
            (TimeSpan held, long words) = account.Read();
            return new UploadTooSlowException(string.Create(CultureInfo.InvariantCulture,
                $"this site's uploads of the round delivered {words} words in the {held.TotalSeconds:F0} s they held an upload slot, slower than the floor of {pace.WordsPerSecond} words a second after a grace of {pace.GraceSeconds} s (MinUploadWordsPerSecond, UploadGraceSeconds): refused, so that stalled uploads do not keep the slots the other sites need; its further uploads of this round are refused at once"));
        }
    }
}

/// <summary>An upload fell behind its <see cref="UploadPace"/>; the message says by how much.</summary>
public sealed class UploadTooSlowException : Exception
{
    public UploadTooSlowException()
    {
    }

    public UploadTooSlowException(string message)
        : base(message)
    {
    }

    public UploadTooSlowException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
