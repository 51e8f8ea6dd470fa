using System.Globalization;
using Grpc.Core;
using SecureFed.Wire.V1;

namespace SecureFed.Aggregator;

/// <summary>
/// The slowest a site's masked-input uploads may be while they hold an upload slot (<see cref="UploadLimiter"/>): in one
/// round attempt, the time a site's uploads have held a slot may exceed <see cref="GraceSeconds"/> by at most the time
/// their words earn at <see cref="WordsPerSecond"/>. Only words that count towards the site's one contribution earn:
/// those of its uploads accepted as fresh (a whole vector, or each slice) and, while it is read, those of the upload in
/// progress (an honest upload must keep going); when an upload ends without being accepted as fresh (refused, broken off,
/// cancelled, too slow, or an identical retry answered as a duplicate) its words are taken back, while the time it held
/// the slot stays booked. So uploads repeated at line speed bank nothing for a later stall. An upload that falls behind is
/// ended (<see cref="UploadTooSlowException"/>) and its slot given back; the account is the site's, not the upload's, so a
/// site that opens upload after upload and stalls or trickles (slow-loris) gets no fresh grace with each: once behind, its
/// next upload of the attempt is refused at its first read. Sites colluding to hold every slot thus hold them for about
/// the grace (plus what one accepted input and one upload in progress earn), not until the stage closes; an honest upload,
/// sent as fast as its link allows, is far ahead of the floor (docs/PROTOCOL.md §5, "Upload rules").
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
    /// Watches <paramref name="stream"/>, an upload of <paramref name="site"/> in round attempt <paramref name="attempt"/>
    /// (its session id) that holds a slot from now on: a <c>MoveNext</c> of <see cref="PacedUpload.Reader"/> that has not
    /// returned by the time the site's account allows throws <see cref="UploadTooSlowException"/>.
    /// <paramref name="wordsSoFar"/> (the first chunk's, read before the slot) count like the words read later: for now.
    /// The caller calls <see cref="PacedUpload.Accepted"/> once the upload is accepted as fresh and disposes of the
    /// upload when it ends (in a <c>finally</c>); disposed without, its words are taken back from the account. The reader
    /// is the stream itself when the floor is off.
    /// </summary>
    public PacedUpload Watch(IAsyncStreamReader<MaskedInputChunk> stream, string attempt, string site, long wordsSoFar)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(attempt);
        ArgumentNullException.ThrowIfNull(site);
        ArgumentOutOfRangeException.ThrowIfNegative(wordsSoFar);
        if (WordsPerSecond == 0)
        {
            return new PacedUpload(stream, null);
        }

        var reader = new PacedReader(this, stream, AccountOf(attempt, site), wordsSoFar);
        return new PacedUpload(reader, reader.End);
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

    /// <summary>
    /// One site's uploads in one attempt: the time they held a slot and the words that earn (those of the uploads accepted
    /// as fresh and of the one in progress).
    /// </summary>
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

        /// <summary>Books <paramref name="held"/> and credits <paramref name="words"/> (negative: takes them back).</summary>
        public void Add(long words, TimeSpan held)
        {
            lock (_lock)
            {
                _words += words;
                _held += held;
            }
        }
    }

    private sealed class PacedReader : IAsyncStreamReader<MaskedInputChunk>
    {
        private readonly UploadPace _pace;
        private readonly IAsyncStreamReader<MaskedInputChunk> _inner;
        private readonly Account _account;
        private readonly Lock _lock = new();
        private DateTimeOffset _mark;

        /// <summary>The words this upload has credited to the account so far (provisionally, until <see cref="End"/>).</summary>
        private long _words;
        private bool _ended;

        public PacedReader(UploadPace pace, IAsyncStreamReader<MaskedInputChunk> inner, Account account, long wordsSoFar)
        {
            _pace = pace;
            _inner = inner;
            _account = account;
            _mark = pace._time.GetUtcNow();
            _words = wordsSoFar;
            account.Add(wordsSoFar, TimeSpan.Zero);
        }

        public MaskedInputChunk Current => _inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            TimeSpan left = Left();
            if (left <= TimeSpan.Zero)
            {
                throw TooSlow();
            }

            using var behind = new CancellationTokenSource(left, _pace._time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, behind.Token);
            try
            {
                bool more = await _inner.MoveNext(linked.Token).ConfigureAwait(false);
                Held(more ? _inner.Current.Words.Count : 0);
                return more;
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException && behind.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                // (A read cancelled under Kestrel may surface as the connection's IOException.)
                throw TooSlow();
            }
            catch (Exception)
            {
                // A read that broke off or was cancelled held the slot all the same: a site that stalls and then drops
                // the call must not get the time back with its next upload.
                Held(0);
                throw;
            }
        }

        /// <summary>
        /// The upload ended (<see cref="PacedUpload.Dispose"/>): its words stay credited only if it was
        /// <paramref name="accepted"/> as fresh; the time it held the slot stays booked either way.
        /// </summary>
        public void End(bool accepted)
        {
            lock (_lock)
            {
                if (!_ended && !accepted)
                {
                    _account.Add(-_words, TimeSpan.Zero);
                }

                _ended = true;
                _words = 0;
            }
        }

        /// <summary>How long the next chunk may take: the grace plus what the words earned, less the time already held.</summary>
        private TimeSpan Left()
        {
            (TimeSpan held, long words) = _account.Read();
            TimeSpan allowed = TimeSpan.FromSeconds(_pace.GraceSeconds + ((double)words / _pace.WordsPerSecond));
            return allowed - held - (_pace._time.GetUtcNow() - _mark);
        }

        /// <summary>
        /// Books the time since the last mark (and <paramref name="words"/>, provisionally, unless the upload has already
        /// ended) to the site's account.
        /// </summary>
        private void Held(long words)
        {
            lock (_lock)
            {
                DateTimeOffset now = _pace._time.GetUtcNow();
                words = _ended ? 0 : words;
                _words += words;
                _account.Add(words, now - _mark);
                _mark = now;
            }
        }

        private UploadTooSlowException TooSlow()
        {
            Held(0);
            (TimeSpan held, long words) = _account.Read();
            return new UploadTooSlowException(string.Create(CultureInfo.InvariantCulture,
                $"this site's uploads of the round delivered {words} words in the {held.TotalSeconds:F0} s they held an upload slot (only the words of its uploads accepted as fresh and of this one count), slower than the floor of {_pace.WordsPerSecond} words a second after a grace of {_pace.GraceSeconds} s (MinUploadWordsPerSecond, UploadGraceSeconds): refused, so that stalled uploads do not keep the slots the other sites need; its further uploads of this round are refused at once"));
        }
    }
}

/// <summary>
/// One upload watched by <see cref="UploadPace.Watch"/>: read it through <see cref="Reader"/>, call <see cref="Accepted"/>
/// once it is accepted as fresh (the site's input or one of its slices, not a duplicate), and dispose of it when the upload
/// ends, accepted or not (a <c>using</c>): only then are its words kept in the site's account; otherwise they are taken back
/// and only the time it held the slot stays booked.
/// </summary>
public sealed class PacedUpload : IDisposable
{
    private readonly Action<bool>? _end;
    private bool _accepted;
    private int _disposed;

    internal PacedUpload(IAsyncStreamReader<MaskedInputChunk> reader, Action<bool>? end)
    {
        Reader = reader;
        _end = end;
    }

    /// <summary>The upload's stream, paced (the stream itself when the floor is off).</summary>
    public IAsyncStreamReader<MaskedInputChunk> Reader { get; }

    /// <summary>The upload was accepted as fresh: its words keep their credit when it is disposed of.</summary>
    public void Accepted() => Volatile.Write(ref _accepted, true);

    /// <summary>The upload ended: unless it was <see cref="Accepted"/>, its words are taken back (its time stays booked).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _end?.Invoke(Volatile.Read(ref _accepted));
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
