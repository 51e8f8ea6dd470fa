using Microsoft.Extensions.Time.Testing;
using SecureFed.Aggregator;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <see cref="ModelDownloadGate"/> on a fake clock: a site's first download of each new current version always goes
/// through; every other download takes one of <c>burst</c> tokens, one more every refill interval, never more than the
/// burst; sites are counted apart; a refusal names the settings and when to try again.
/// </summary>
public sealed class ModelDownloadGateTests
{
    [Fact]
    public void TryStart_RepeatsOfTheCurrentVersion_BurstThenRefusedNamingTheWaitThenOneMorePerInterval()
    {
        var time = new FakeTimeProvider();
        var gate = new ModelDownloadGate(3, TimeSpan.FromSeconds(60), time);

        Assert.Null(gate.TryStart("site-x", 5, 5)); // the first of version 5: free
        for (int i = 0; i < 3; i++)
        {
            Assert.Null(gate.TryStart("site-x", 5, 5)); // three repeats from the burst
        }

        string? refused = gate.TryStart("site-x", 5, 5);
        Assert.NotNull(refused);
        Assert.Contains("site 'site-x' has downloaded model versions more often than the aggregator allows", refused, StringComparison.Ordinal);
        Assert.Contains("up to 3 more downloads, one more every 60 s (SecureFed:ModelDownloadBurst, SecureFed:ModelDownloadRefillSeconds); try again in 60 s", refused, StringComparison.Ordinal);

        time.Advance(TimeSpan.FromSeconds(45));
        Assert.Contains("try again in 15 s", gate.TryStart("site-x", 5, 5), StringComparison.Ordinal);
        time.Advance(TimeSpan.FromSeconds(15));
        Assert.Null(gate.TryStart("site-x", 5, 5)); // one token after one interval
        Assert.NotNull(gate.TryStart("site-x", 5, 5));
    }

    [Fact]
    public void TryStart_EachNewCurrentVersion_FirstDownloadFreeEvenWithTheBucketEmpty()
    {
        var time = new FakeTimeProvider();
        var gate = new ModelDownloadGate(1, TimeSpan.FromSeconds(60), time);
        Assert.Null(gate.TryStart("site-a", 1, 1));
        Assert.Null(gate.TryStart("site-a", 1, 1)); // the one token
        Assert.NotNull(gate.TryStart("site-a", 1, 1));

        // An honest agent in round after round: each new version once, with no token left.
        for (long v = 2; v < 50; v++)
        {
            Assert.Null(gate.TryStart("site-a", v, v));
        }

        // An older version, or the current one again, is a repeat.
        Assert.NotNull(gate.TryStart("site-a", 10, 49));
        Assert.NotNull(gate.TryStart("site-a", 49, 49));
    }

    [Fact]
    public void TryStart_OldVersionsAndOtherSites_RepeatsCountedPerSiteAndRefilledAtMostToTheBurst()
    {
        var time = new FakeTimeProvider();
        var gate = new ModelDownloadGate(2, TimeSpan.FromSeconds(10), time);

        // Downloads of versions other than the current one always take a token: cycling through stored versions gains nothing.
        Assert.Null(gate.TryStart("site-x", 1, 7));
        Assert.Null(gate.TryStart("site-x", 2, 7));
        Assert.NotNull(gate.TryStart("site-x", 3, 7));

        // Another site has its own account.
        Assert.Null(gate.TryStart("site-a", 3, 7));

        // A long quiet time refills to the burst, not beyond.
        time.Advance(TimeSpan.FromHours(5));
        Assert.Null(gate.TryStart("site-x", 1, 7));
        Assert.Null(gate.TryStart("site-x", 1, 7));
        Assert.NotNull(gate.TryStart("site-x", 1, 7));
    }

    [Fact]
    public void Constructor_BurstBelowOneOrNoInterval_Refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ModelDownloadGate(0, TimeSpan.FromSeconds(1), TimeProvider.System));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ModelDownloadGate(1, TimeSpan.Zero, TimeProvider.System));
    }
}
