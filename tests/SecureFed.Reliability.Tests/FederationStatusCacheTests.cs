using Microsoft.Extensions.Time.Testing;
using SecureFed.Aggregator;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <see cref="FederationStatusCache"/> on a fake clock: a status call builds the status (about 50 round-store queries
/// under the store's lock) at most once per <see cref="FederationStatusCache.MaxAge"/> however many calls ask, at once
/// or one after another (a site looping status calls made the coordinator's store writes queue behind its reads); an
/// aged status is built again; every caller gets its own copy.
/// </summary>
public sealed class FederationStatusCacheTests
{
    [Fact]
    public void Get_ManyCallsWithinMaxAge_OneBuildThenRebuiltOnceAged()
    {
        var time = new FakeTimeProvider();
        var cache = new FederationStatusCache(time);
        long version = 1;
        FederationStatus Build() => new() { FederationId = "f", LatestModelVersion = (ulong)version };

        for (int i = 0; i < 1000; i++)
        {
            Assert.Equal(1UL, cache.Get(Build).LatestModelVersion);
        }

        version = 2;
        time.Advance(FederationStatusCache.MaxAge - TimeSpan.FromMilliseconds(1));
        Assert.Equal(1UL, cache.Get(Build).LatestModelVersion);
        Assert.Equal(1, cache.Builds);

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(2UL, cache.Get(Build).LatestModelVersion);
        Assert.Equal(2, cache.Builds);
    }

    [Fact]
    public void Get_ConcurrentCallersAfterTheStatusAged_OneBuildForAll()
    {
        var time = new FakeTimeProvider();
        var cache = new FederationStatusCache(time);
        int building = 0;
        int overlapped = 0;
        FederationStatus Build()
        {
            if (Interlocked.Increment(ref building) > 1)
            {
                Interlocked.Increment(ref overlapped);
            }

            Thread.Sleep(20); // a slow store read: callers arriving meanwhile must wait for it, not build their own
            Interlocked.Decrement(ref building);
            return new FederationStatus { FederationId = "f" };
        }

        for (int burst = 1; burst <= 3; burst++)
        {
            // Dedicated threads (not the pool's, which grows slowly on 2 cores), released together.
            using var start = new Barrier(16);
            int wrong = 0;
            Thread[] callers = [.. Enumerable.Range(0, 16).Select(_ => new Thread(() =>
            {
                start.SignalAndWait();
                for (int i = 0; i < 50; i++)
                {
                    if (cache.Get(Build).FederationId != "f")
                    {
                        Interlocked.Increment(ref wrong);
                    }
                }
            }))];
            foreach (Thread caller in callers)
            {
                caller.Start();
            }

            foreach (Thread caller in callers)
            {
                Assert.True(caller.Join(TimeSpan.FromSeconds(60)), "a caller did not finish in 60 s");
            }

            Assert.Equal(0, wrong);
            Assert.Equal(burst, cache.Builds);
            time.Advance(FederationStatusCache.MaxAge);
        }

        Assert.Equal(0, overlapped);
    }

    [Fact]
    public void Get_EachCallerItsOwnCopy_ChangingOneAnswerLeavesTheNext()
    {
        var cache = new FederationStatusCache(new FakeTimeProvider());
        FederationStatus first = cache.Get(() => new FederationStatus { FederationId = "f", Rounds = { new RoundSummary { Round = 1, State = "completed" } } });
        first.Rounds.Clear();
        first.FederationId = "changed";

        FederationStatus second = cache.Get(() => throw new InvalidOperationException("built again within MaxAge"));
        Assert.Equal("f", second.FederationId);
        Assert.Equal(1UL, Assert.Single(second.Rounds).Round);
    }
}
