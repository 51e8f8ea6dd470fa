using SecureFed.Aggregator;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <see cref="RoundSession"/>'s signals, in process: a site's cancelled stage long-polls leave nothing behind them (a hostile
/// site may poll with a 1 ms deadline in a loop).
/// </summary>
public sealed class RoundSessionTests
{
    private static readonly TimeSpan HangBound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task WaitStageClosedAsync_200kCancelledWaits_HeapKeepsNothingAndLaterWaitsStillReleased()
    {
        RoundSession session = NewSession();
        ProtocolStage[] polled = [ProtocolStage.AdvertiseKeys, ProtocolStage.ShareKeys, ProtocolStage.MaskedInputCollection, ProtocolStage.ConsistencyCheck];
        await CancelledWaitsAsync(session, polled, 1_000); // JIT and pools first
        long before = GC.GetTotalMemory(forceFullCollection: true);

        await CancelledWaitsAsync(session, polled, 200_000);

        long grown = GC.GetTotalMemory(forceFullCollection: true) - before;
        Assert.True(grown < 1 << 20, $"the heap grew by {grown} bytes after 200,000 cancelled waits");
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

    private static async Task CancelledWaitsAsync(RoundSession session, ProtocolStage[] stages, int count)
    {
        for (int i = 0; i < count; i++)
        {
            using var cts = new CancellationTokenSource();
            Task wait = session.WaitStageClosedAsync(stages[i % stages.Length], cts.Token);
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);
        }
    }

    /// <summary>A session whose waits and wake-ups are under test; they use none of the round's parts.</summary>
    private static RoundSession NewSession() => new(null!, null!, new RoundAnnouncement(), null!, null!, 0, "");
}
