using Grpc.Core;
using Microsoft.Extensions.Time.Testing;
using SecureFed.Aggregator;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <see cref="UploadPace"/> on a fake clock: a site's uploads of one attempt may hold a slot for the grace plus whatever
/// their words have earned at the floor's rate, and not a moment longer; the account is the site's in that attempt, so a
/// new upload gets no fresh grace, while another site or attempt starts afresh; a floor of 0 leaves the stream as it is.
/// </summary>
public sealed class UploadPaceTests
{
    [Fact]
    public async Task Watch_NoChunkWithinTheGrace_TooSlowAtTheGraceNotBefore()
    {
        var time = new FakeTimeProvider();
        var stream = new ManualStream();
        IAsyncStreamReader<MaskedInputChunk> paced = new UploadPace(1_000, 30, time).Watch(stream, "attempt-1", "site-a", wordsSoFar: 0);

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
        IAsyncStreamReader<MaskedInputChunk> paced = new UploadPace(1_000, 30, time).Watch(stream, "attempt-1", "site-a", wordsSoFar: 500); // the first chunk's 500 words: 0.5 s

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
        IAsyncStreamReader<MaskedInputChunk> one = pace.Watch(first, "attempt-1", "site-a", 0);
        Task<bool> next = one.MoveNext(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(20));
        first.End();
        Assert.False(await next.WaitAsync(TimeSpan.FromSeconds(10)));

        // An hour without a slot is not charged; the second upload has the 10 s left, not 30.
        time.Advance(TimeSpan.FromHours(1));
        IAsyncStreamReader<MaskedInputChunk> two = pace.Watch(new ManualStream(), "attempt-1", "site-a", 0);
        next = two.MoveNext(CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(9.9));
        await Task.Delay(50);
        Assert.False(next.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(0.2));
        await Assert.ThrowsAsync<UploadTooSlowException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));

        // Behind now: a third upload of site-a in attempt-1 is refused at its first read.
        UploadTooSlowException again = await Assert.ThrowsAsync<UploadTooSlowException>(() => pace.Watch(new ManualStream(), "attempt-1", "site-a", 0).MoveNext(CancellationToken.None));
        Assert.Contains("its further uploads of this round are refused at once", again.Message, StringComparison.Ordinal);

        // Another site, and site-a in the next attempt, have their whole grace.
        foreach ((string attempt, string site) in new[] { ("attempt-1", "site-b"), ("attempt-2", "site-a") })
        {
            next = pace.Watch(new ManualStream(), attempt, site, 0).MoveNext(CancellationToken.None);
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
        IAsyncStreamReader<MaskedInputChunk> paced = new UploadPace(1_000, 30, time).Watch(stream, "attempt-1", "site-a", 0);
        using var stop = new CancellationTokenSource();

        Task<bool> next = paced.MoveNext(stop.Token);
        await stop.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void Watch_FloorOff_ReturnsTheStreamItself()
    {
        var stream = new ManualStream();
        Assert.Same(stream, new UploadPace(0, 30).Watch(stream, "attempt-1", "site-a", 0));
    }

    [Fact]
    public void Constructor_NegativeValues_Refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new UploadPace(-1, 30));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UploadPace(1, -1));
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
