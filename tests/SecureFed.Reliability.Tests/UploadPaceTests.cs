using Grpc.Core;
using Microsoft.Extensions.Time.Testing;
using SecureFed.Aggregator;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <see cref="UploadPace"/> on a fake clock: a site's uploads of one attempt may hold a slot for the grace plus whatever
/// their words have earned at the floor's rate, and not a moment longer; the account is the site's in that attempt, so a
/// new upload gets no fresh grace, while another site or attempt starts afresh; only the words of uploads accepted as
/// fresh (and of the one being read) earn, while every upload's time, a dropped read's too, stays booked; a floor of 0
/// leaves the stream as it is.
/// </summary>
public sealed class UploadPaceTests
{
    [Fact]
    public async Task Watch_NoChunkWithinTheGrace_TooSlowAtTheGraceNotBefore()
    {
        var time = new FakeTimeProvider();
        var stream = new ManualStream();
        IAsyncStreamReader<MaskedInputChunk> paced = new UploadPace(1_000, 30, time).Watch(stream, "attempt-1", "site-a", wordsSoFar: 0).Reader;

        Task<bool> next = paced.MoveNext(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(29.9));
        await Task.Delay(50);
        Assert.False(next.IsCompleted);

        time.Advance(TimeSpan.FromSeconds(0.2));
        UploadTooSlowException ex = await Assert.ThrowsAsync<UploadTooSlowException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("this site's uploads of the round delivered 0 words in the 30 s they held an upload slot", ex.Message, StringComparison.Ordinal);
        Assert.Contains("MinUploadWordsPerSecond", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_WordsEarnTime_AtTheFloorsRate()
    {
        var time = new FakeTimeProvider();
        var stream = new ManualStream();
        IAsyncStreamReader<MaskedInputChunk> paced = new UploadPace(1_000, 30, time).Watch(stream, "attempt-1", "site-a", wordsSoFar: 500).Reader; // the first chunk's 500 words: 0.5 s

        Task<bool> next = paced.MoveNext(CancellationToken.None);
        stream.Deliver(10_000); // 10 s more
        Assert.True(await next.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(10_000, paced.Current.Words.Count);

        // Deadline 30 + 0.5 + 10 = 40.5 s after the start.
        next = paced.MoveNext(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(40.4));
        await Task.Delay(50);
        Assert.False(next.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(0.2));
        UploadTooSlowException ex = await Assert.ThrowsAsync<UploadTooSlowException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("delivered 10500 words", ex.Message, StringComparison.Ordinal);

        // Already behind when asked for the next chunk: refused at once, without waiting.
        await Assert.ThrowsAsync<UploadTooSlowException>(() => paced.MoveNext(CancellationToken.None));
    }

    [Fact]
    public async Task Watch_NewUploadOfTheSameSiteAndAttempt_NoFreshGrace_OthersAndTimeWithoutASlotNotCharged()
    {
        var time = new FakeTimeProvider();
        var pace = new UploadPace(1_000, 30, time);

        // 20 s of the grace used by a first upload that then ends (its stream complete).
        var first = new ManualStream();
        IAsyncStreamReader<MaskedInputChunk> one = pace.Watch(first, "attempt-1", "site-a", 0).Reader;
        Task<bool> next = one.MoveNext(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(20));
        first.End();
        Assert.False(await next.WaitAsync(TimeSpan.FromSeconds(10)));

        // An hour without a slot is not charged; the second upload has the 10 s left, not 30.
        time.Advance(TimeSpan.FromHours(1));
        IAsyncStreamReader<MaskedInputChunk> two = pace.Watch(new ManualStream(), "attempt-1", "site-a", 0).Reader;
        next = two.MoveNext(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(9.9));
        await Task.Delay(50);
        Assert.False(next.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(0.2));
        await Assert.ThrowsAsync<UploadTooSlowException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));

        // Behind now: a third upload of site-a in attempt-1 is refused at its first read.
        UploadTooSlowException again = await Assert.ThrowsAsync<UploadTooSlowException>(() => pace.Watch(new ManualStream(), "attempt-1", "site-a", 0).Reader.MoveNext(CancellationToken.None));
        Assert.Contains("its further uploads of this round are refused at once", again.Message, StringComparison.Ordinal);

        // Another site, and site-a in the next attempt, have their whole grace.
        foreach ((string attempt, string site) in new[] { ("attempt-1", "site-b"), ("attempt-2", "site-a") })
        {
            next = pace.Watch(new ManualStream(), attempt, site, 0).Reader.MoveNext(CancellationToken.None);
            time.Advance(TimeSpan.FromSeconds(29));
            await Task.Delay(50);
            Assert.False(next.IsCompleted, $"{site} in {attempt}");
        }
    }

    [Fact]
    public async Task Watch_CallersOwnCancellation_IsNotTakenForSlowness()
    {
        var time = new FakeTimeProvider();
        var stream = new ManualStream();
        IAsyncStreamReader<MaskedInputChunk> paced = new UploadPace(1_000, 30, time).Watch(stream, "attempt-1", "site-a", 0).Reader;
        using var stop = new CancellationTokenSource();

        Task<bool> next = paced.MoveNext(stop.Token);
        await stop.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Watch_FastUploadsNotAcceptedThenAStall_NoCreditBanked_StallEndsAfterTheGrace()
    {
        // The session-44 review's case: floor 1,000 words a second, grace 1 s. Three fast 20,000-word uploads that are not
        // accepted as fresh (identical retries answered as duplicates) used to bank 60 s, so a stall that followed held
        // its slot for 61 s. Their words are taken back when they end: the stall ends after the grace.
        var time = new FakeTimeProvider();
        var pace = new UploadPace(1_000, 1, time);
        for (int i = 0; i < 3; i++)
        {
            var stream = new ManualStream();
            using PacedUpload duplicate = pace.Watch(stream, "attempt-1", "site-x", 0);
            await ReadFastAsync(duplicate.Reader, stream, 20_000);
        }

        UploadTooSlowException ex = await StallEndsAfterAsync(pace, time, "site-x", seconds: 1);
        Assert.Contains("delivered 0 words in the 1 s", ex.Message, StringComparison.Ordinal);
        Assert.Contains("only the words of its uploads accepted as fresh and of this one count", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_AcceptedInputResentThenAStall_OnlyTheAcceptedInputsWordsCount()
    {
        // Site-x's 20,000-word input is accepted (20 s of credit), then sent three more times at line speed, answered as
        // duplicates: the stall that follows ends after the grace plus the accepted input's 20 s (21 s), not 81 s.
        var time = new FakeTimeProvider();
        var pace = new UploadPace(1_000, 1, time);
        var input = new ManualStream();
        using (PacedUpload accepted = pace.Watch(input, "attempt-1", "site-x", 0))
        {
            await ReadFastAsync(accepted.Reader, input, 20_000);
            accepted.Accepted();
        }

        for (int i = 0; i < 3; i++)
        {
            var stream = new ManualStream();
            using PacedUpload duplicate = pace.Watch(stream, "attempt-1", "site-x", 0);
            await ReadFastAsync(duplicate.Reader, stream, 20_000);
        }

        UploadTooSlowException ex = await StallEndsAfterAsync(pace, time, "site-x", seconds: 21);
        Assert.Contains("delivered 20000 words in the 21 s", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_AcceptedUploadThenSliceUploads_EachAcceptedOneKeepsItsCredit()
    {
        // Floor 1,000 words a second, grace 1 s. A first upload of 10,000 words (a first chunk of 5,000, read before the
        // slot, and 5,000 more) takes 4 s and is accepted: 1 + 10 s allowed, 4 s held. The next (another slice) starts
        // with 7 s in hand, not with the site behind; it too takes its 10,000 words in 6 s and is accepted: 21 s
        // allowed, 10 s held.
        var time = new FakeTimeProvider();
        var pace = new UploadPace(1_000, 1, time);
        foreach (double seconds in new[] { 4.0, 6.0 })
        {
            var stream = new ManualStream();
            using PacedUpload slice = pace.Watch(stream, "attempt-1", "site-a", wordsSoFar: 5_000);
            Task<bool> next = slice.Reader.MoveNext(CancellationToken.None);
            time.Advance(TimeSpan.FromSeconds(seconds));
            stream.Deliver(5_000);
            Assert.True(await next.WaitAsync(TimeSpan.FromSeconds(10)));
            next = slice.Reader.MoveNext(CancellationToken.None);
            stream.End();
            Assert.False(await next.WaitAsync(TimeSpan.FromSeconds(10)));
            slice.Accepted();
        }

        // A further upload (an identical retry whose answer was lost) that stalls has the 11 s left.
        UploadTooSlowException ex = await StallEndsAfterAsync(pace, time, "site-a", seconds: 11);
        Assert.Contains("delivered 20000 words in the 21 s", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_HonestRetries_BrokenConnectionThenRetryThenLostAnswerRetry_AllGoThrough()
    {
        // Floor 1,000 words a second, grace 30 s, a 20,000-word input sent at 10 times the floor (2 s): an upload that
        // breaks off half-way (its 10,000 words taken back, its 1 s booked), the retry (accepted), and a retry of that whose
        // answer was lost (a duplicate) all keep up; the account then holds the accepted input's words and 5 s.
        var time = new FakeTimeProvider();
        var pace = new UploadPace(1_000, 30, time);
        var broken = new ManualStream();
        using (PacedUpload upload = pace.Watch(broken, "attempt-1", "site-a", 0))
        {
            await ReadAsync(upload.Reader, broken, time, 10_000, TimeSpan.FromSeconds(1));
            Task<bool> next = upload.Reader.MoveNext(CancellationToken.None);
            broken.Fail(new IOException("the connection broke"));
            await Assert.ThrowsAsync<IOException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
        }

        foreach (bool fresh in new[] { true, false })
        {
            var stream = new ManualStream();
            using PacedUpload upload = pace.Watch(stream, "attempt-1", "site-a", 0);
            await ReadAsync(upload.Reader, stream, time, 20_000, TimeSpan.FromSeconds(2));
            Task<bool> next = upload.Reader.MoveNext(CancellationToken.None);
            stream.End();
            Assert.False(await next.WaitAsync(TimeSpan.FromSeconds(10)));
            if (fresh)
            {
                upload.Accepted();
            }
        }

        // 30 + 20 s allowed, 5 s held: a stall now ends after 45 s.
        UploadTooSlowException ex = await StallEndsAfterAsync(pace, time, "site-a", seconds: 45);
        Assert.Contains("delivered 20000 words in the 50 s", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_StalledReadDroppedByTheCaller_ItsTimeStaysBooked()
    {
        // A site that stalls an upload for 20 s of its 30 s grace and drops the call (the read cancelled by the caller's
        // token), then stalls another for 9 s and resets the connection (the read broken off), does not get the time
        // back: its next upload has the 1 s left, not a fresh 30 s.
        var time = new FakeTimeProvider();
        var pace = new UploadPace(1_000, 30, time);
        using (PacedUpload dropped = pace.Watch(new ManualStream(), "attempt-1", "site-x", 0))
        {
            using var call = new CancellationTokenSource();
            Task<bool> next = dropped.Reader.MoveNext(call.Token);
            time.Advance(TimeSpan.FromSeconds(20));
            await call.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
        }

        var broken = new ManualStream();
        using (PacedUpload dropped = pace.Watch(broken, "attempt-1", "site-x", 0))
        {
            Task<bool> next = dropped.Reader.MoveNext(CancellationToken.None);
            time.Advance(TimeSpan.FromSeconds(9));
            broken.Fail(new IOException("the connection was reset"));
            await Assert.ThrowsAsync<IOException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
        }

        await StallEndsAfterAsync(pace, time, "site-x", seconds: 1);
    }

    [Fact]
    public void Watch_FloorOff_ReturnsTheStreamItself()
    {
        var stream = new ManualStream();
        using PacedUpload upload = new UploadPace(0, 30).Watch(stream, "attempt-1", "site-a", 0);
        Assert.Same(stream, upload.Reader);
        upload.Accepted();
    }

    [Fact]
    public void Constructor_NegativeValues_Refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new UploadPace(-1, 30));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UploadPace(1, -1));
    }

    /// <summary>
    /// Opens an upload of <paramref name="site"/> that stalls at once and checks that it is still waiting 0.1 s before
    /// <paramref name="seconds"/> and refused as too slow 0.1 s after; returns the refusal.
    /// </summary>
    private static async Task<UploadTooSlowException> StallEndsAfterAsync(UploadPace pace, FakeTimeProvider time, string site, double seconds)
    {
        using PacedUpload stall = pace.Watch(new ManualStream(), "attempt-1", site, 0);
        Task<bool> next = stall.Reader.MoveNext(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(seconds - 0.1));
        await Task.Delay(50);
        Assert.False(next.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(0.2));
        return await Assert.ThrowsAsync<UploadTooSlowException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    /// <summary>Reads a chunk of <paramref name="words"/> words at line speed (no time passes), then the end of the stream.</summary>
    private static async Task ReadFastAsync(IAsyncStreamReader<MaskedInputChunk> reader, ManualStream stream, int words)
    {
        Task<bool> next = reader.MoveNext(CancellationToken.None);
        stream.Deliver(words);
        Assert.True(await next.WaitAsync(TimeSpan.FromSeconds(10)));
        next = reader.MoveNext(CancellationToken.None);
        stream.End();
        Assert.False(await next.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    /// <summary>Reads one chunk of <paramref name="words"/> words that arrives after <paramref name="after"/>.</summary>
    private static async Task ReadAsync(IAsyncStreamReader<MaskedInputChunk> reader, ManualStream stream, FakeTimeProvider time, int words, TimeSpan after)
    {
        Task<bool> next = reader.MoveNext(CancellationToken.None);
        time.Advance(after);
        stream.Deliver(words);
        Assert.True(await next.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    /// <summary>A request stream whose chunks arrive when the test says so; a pending read ends when its token is cancelled.</summary>
    private sealed class ManualStream : IAsyncStreamReader<MaskedInputChunk>
    {
        private TaskCompletionSource<MaskedInputChunk> _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public MaskedInputChunk Current { get; private set; } = new();

        public void Deliver(int words)
        {
            var chunk = new MaskedInputChunk();
            chunk.Words.AddRange(new uint[words]);
            _next.SetResult(chunk);
        }

        /// <summary>Ends the stream (the next read returns false).</summary>
        public void End() => _next.SetResult(null!);

        /// <summary>Breaks the stream off (the next read throws <paramref name="error"/>).</summary>
        public void Fail(Exception error) => _next.SetException(error);

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            MaskedInputChunk? chunk = await _next.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            _next = new TaskCompletionSource<MaskedInputChunk>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (chunk is null)
            {
                return false;
            }

            Current = chunk;
            return true;
        }
    }
}
