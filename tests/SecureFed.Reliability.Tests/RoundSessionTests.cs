using SecureFed.Aggregator;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <see cref="RoundSession"/>'s signals, in process: a site's cancelled stage long-polls leave nothing behind them (a hostile
/// site may poll with a 1 ms deadline in a loop), and a burst of wake-ups for the coordinator's stage loop costs it one
/// status check, never losing one.
/// </summary>
/// <remarks>
/// Alone in a collection that xUnit runs after the others and without them: the heap test reads the whole process's heap,
/// which the federations of the classes running in parallel grew by megabytes while it ran.
/// </remarks>
[Collection(nameof(RoundSessionTests))]
public sealed class RoundSessionTests
{
    private static readonly TimeSpan HangBound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task WaitStageClosedAsync_200kCancelledWaits_HeapKeepsNothingAndLaterWaitsStillReleased()
    {
        RoundSession session = NewSession();
        ProtocolStage[] polled = [ProtocolStage.AdvertiseKeys, ProtocolStage.ShareKeys, ProtocolStage.MaskedInputCollection, ProtocolStage.ConsistencyCheck];

        await CancelledWaitsAsync(session, polled, 1_000); // JIT and pools first

        // Anything the session keeps per cancelled wait grows the heap with every batch of 200,000: a leak of 5 bytes a
        // wait is 1 MB a batch. Other test classes run in parallel in this process and move the heap by megabytes at
        // times, so a batch that grew is measured again, up to three batches; a leak grows every one of them.
        var growth = new List<long>();
        List<WeakReference> sampled = [];
        for (int batch = 0; batch < 3 && (growth.Count == 0 || growth[^1] >= 1 << 20); batch++)
        {
            long before = GC.GetTotalMemory(forceFullCollection: true);
            sampled = await CancelledWaitsAsync(session, polled, 200_000);
            growth.Add(GC.GetTotalMemory(forceFullCollection: true) - before);
        }

        Assert.True(growth[^1] < 1 << 20, $"the heap grew by {string.Join(", ", growth)} bytes in batches of 200,000 cancelled waits");

        // What a continuation left on the stage's release signal would keep is the wait's own task: every sampled task
        // of the last batch must be collectable.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        int alive = sampled.Count(w => w.IsAlive);
        Assert.True(alive == 0, $"{alive} of {sampled.Count} sampled cancelled waits are still reachable after a full collection");
        Task shares = session.WaitStageClosedAsync(ProtocolStage.ShareKeys, CancellationToken.None);
        Task survivors = session.WaitStageClosedAsync(ProtocolStage.MaskedInputCollection, CancellationToken.None);
        Assert.False(shares.IsCompleted);
        session.CloseStage(ProtocolStage.ShareKeys);
        await shares.WaitAsync(HangBound);
        Assert.False(survivors.IsCompleted);
        session.Finish(new RoundOutcome { Completed = false, AbortReason = "too few sites" });
        RoundAbortedException ex = await Assert.ThrowsAsync<RoundAbortedException>(() => survivors.WaitAsync(HangBound));
        Assert.Equal("too few sites", ex.Reason);
        await session.WaitStageClosedAsync(ProtocolStage.ShareKeys, CancellationToken.None).WaitAsync(HangBound); // closed before the end
    }

    [Fact]
    public async Task Signal_ThousandSignalsWhileTheLoopChecks_OneWakeUpPending()
    {
        RoundSession session = NewSession();

        for (int i = 0; i < 1_000; i++)
        {
            session.Signal();
        }

        Assert.Equal(1, await WakeUpsAsync(session));
    }

    [Fact]
    public async Task Signal_FromManyThreadsAtOnce_OneWakeUpPending()
    {
        RoundSession session = NewSession();

        Parallel.For(0, 10_000, _ => session.Signal());

        Assert.Equal(1, await WakeUpsAsync(session));
    }

    [Fact]
    public async Task Signal_BurstWhileTheLoopWaits_WakesItThenAtMostOneMoreCheck()
    {
        RoundSession session = NewSession();
        Task<bool> waiting = session.WaitForActivityAsync(HangBound, CancellationToken.None);
        Assert.False(waiting.IsCompleted);

        for (int i = 0; i < 1_000; i++)
        {
            session.Signal();
        }

        Assert.True(await waiting.WaitAsync(HangBound));
        Assert.InRange(await WakeUpsAsync(session), 0, 1);

        // A signal after the loop has taken every wake-up (it checked, and waits again) still wakes it.
        Task<bool> next = session.WaitForActivityAsync(HangBound, CancellationToken.None);
        Assert.False(next.IsCompleted);
        session.Signal();
        Assert.True(await next.WaitAsync(HangBound));
    }

    /// <summary>The wake-ups pending: how many waits return at once.</summary>
    private static async Task<int> WakeUpsAsync(RoundSession session)
    {
        int woken = 0;
        while (await session.WaitForActivityAsync(TimeSpan.Zero, CancellationToken.None))
        {
            woken++;
        }

        return woken;
    }

    /// <summary>Starts and cancels <paramref name="count"/> waits; returns weak references to every 100th wait's task.</summary>
    private static async Task<List<WeakReference>> CancelledWaitsAsync(RoundSession session, ProtocolStage[] stages, int count)
    {
        var sampled = new List<WeakReference>();
        for (int i = 0; i < count; i++)
        {
            using var cts = new CancellationTokenSource();
            Task wait = session.WaitStageClosedAsync(stages[i % stages.Length], cts.Token);
            if (i % 100 == 0)
            {
                sampled.Add(new WeakReference(wait));
            }

            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);
        }

        return sampled;
    }

    /// <summary>A session whose waits and wake-ups are under test; they use none of the round's parts.</summary>
    private static RoundSession NewSession() => new(null!, null!, new RoundAnnouncement(), null!, null!, 0, "");
}

/// <summary>The collection of <see cref="RoundSessionTests"/>: not run in parallel with any other test.</summary>
[CollectionDefinition(nameof(RoundSessionTests), DisableParallelization = true)]
public sealed class RoundSessionTestsCollection;
