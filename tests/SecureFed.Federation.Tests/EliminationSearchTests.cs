using SecureFed.Aggregator;
using Xunit;

namespace SecureFed.Federation.Tests;

/// <summary>
/// The search by elimination (docs/PROTOCOL.md "Blame: by elimination"): simulated federations in which one site makes
/// every attempt it is in fail (an out-of-bound sum, a secret that cannot be rebuilt). The search must find that site and
/// never name an honest one, whatever the random hold-outs, need few failed attempts to do so, and bound what a site that
/// attacks only when nobody is held out can do.
/// </summary>
public sealed class EliminationSearchTests
{
    private static readonly string[] Four = ["site-a", "site-b", "site-c", "site-d"];

    [Fact]
    public void Failed_FirstFailure_SuspectsAreTheSitesInvolved()
    {
        var search = new EliminationSearch(n => 0);
        Assert.Empty(search.DrawHoldOut(Four, 10)); // no search yet: nobody is held out

        EliminationStep step = search.Failed(["site-d", "site-a", "site-c", "site-b"]);

        Assert.Null(step.Found);
        Assert.True(step.Restarted);
        Assert.Equal(Four, step.Suspects);
        Assert.True(search.IsSuspect("site-c"));
        Assert.False(search.IsSuspect("site-e"));
    }

    [Fact]
    public void DrawHoldOut_HalfTheEligibleSuspectsAtMostTheSpare()
    {
        var search = new EliminationSearch();
        search.Failed(Four);

        for (int i = 0; i < 50; i++)
        {
            IReadOnlyList<string> half = search.DrawHoldOut(Four, 10);
            Assert.Equal(2, half.Count);
            Assert.All(half, s => Assert.Contains(s, Four));
            Assert.Equal(half.Order(StringComparer.Ordinal), half);
        }

        Assert.Single(search.DrawHoldOut(Four, 1));
        Assert.Empty(search.DrawHoldOut(Four, 0));

        // Only eligible suspects are held out (an excluded or revoked one is out anyway): half of the two left.
        for (int i = 0; i < 20; i++)
        {
            string one = Assert.Single(search.DrawHoldOut(["site-c", "site-d", "site-e"], 10));
            Assert.Contains(one, (string[])["site-c", "site-d"]);
        }
    }

    [Fact]
    public void DrawHoldOut_EveryHalfEquallyLikely()
    {
        // A uniformly random 2 of 4: each of the 6 pairs about 1/6 of 6,000 draws.
        var search = new EliminationSearch(new Random(5).Next);
        search.Failed(Four);
        var counts = new Dictionary<string, int>();
        for (int i = 0; i < 6_000; i++)
        {
            string pair = string.Join(',', search.DrawHoldOut(Four, 2));
            counts[pair] = counts.GetValueOrDefault(pair) + 1;
        }

        Assert.Equal(6, counts.Count);
        Assert.All(counts.Values, c => Assert.InRange(c, 850, 1_150));
    }

    [Fact]
    public void Failed_FailuresNarrowToOneSite_ThatSiteIsFoundAndTheSearchEnds()
    {
        var search = new EliminationSearch(n => 0);
        search.Failed(["site-a", "site-b", "site-c", "site-x"]);
        EliminationStep second = search.Failed(["site-b", "site-x"]);
        Assert.Equal(["site-b", "site-x"], second.Suspects);
        Assert.Single(search.DrawHoldOut(["site-a", "site-b", "site-c", "site-x"], 2));

        EliminationStep third = search.Failed(["site-a", "site-c", "site-x"]);
        Assert.Equal("site-x", third.Found);
        Assert.Empty(search.Suspects);
        Assert.Empty(search.DrawHoldOut(["site-a", "site-b", "site-c", "site-x"], 2));

        // Found: the next failure begins a new search.
        EliminationStep next = search.Failed(["site-a", "site-x"]);
        Assert.True(next.Restarted);
        Assert.Equal(["site-a", "site-x"], next.Suspects);
    }

    [Fact]
    public void Failed_NoSuspectInvolved_SearchRestartsFromTheSitesInvolved()
    {
        var search = new EliminationSearch(n => 0);
        search.Failed(["site-a", "site-b"]);
        EliminationStep step = search.Failed(["site-c", "site-d"]);

        Assert.True(step.Restarted);
        Assert.Equal(["site-c", "site-d"], step.Suspects);
    }

    [Fact]
    public void Completed_QuietWindowWithoutAFailure_EndsTheSearchAndDoublesTheNextWindow()
    {
        var search = new EliminationSearch(n => 0, firstQuietWindow: 3);
        Assert.Null(search.Completed()); // no search: nothing to end
        search.Failed(Four);
        Assert.Null(search.Completed());
        Assert.Null(search.Completed());
        search.Failed(Four); // a failure starts the window again
        Assert.Null(search.Completed());
        Assert.Null(search.Completed());

        Assert.Equal(Four, search.Completed());

        Assert.Empty(search.Suspects);
        Assert.Empty(search.DrawHoldOut(Four, 2));
        Assert.Equal(6, search.QuietWindow);
        Assert.True(search.Failed(Four).Restarted);
    }

    /// <summary>
    /// 2,000 simulated federations of 3 to 40 sites, one hostile site at a random place, each attempt's cohort every site
    /// not held out (some honest sites also drop out at random); the hostile site makes every attempt it is in fail. The
    /// search names the hostile site every time, never an honest one, within 2·⌈log₂ n⌉ + 8 failed attempts when it may
    /// hold half the suspects out; with one site spare per attempt (a 4-site federation needing 3) it still ends.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Failed_OneHostileSite_AlwaysFoundNeverAnHonestSite(bool oneSpare)
    {
        var rng = new Random(oneSpare ? 17 : 7);
        for (int trial = 0; trial < 1_000; trial++)
        {
            int n = rng.Next(3, 41);
            string[] sites = [.. Enumerable.Range(0, n).Select(i => $"site-{i:D2}")];
            string hostile = sites[rng.Next(n)];
            var search = new EliminationSearch(k => rng.Next(k));
            int failed = 0;
            string? found = null;
            for (int attempt = 0; attempt < 10_000 && found is null; attempt++)
            {
                IReadOnlyList<string> held = search.DrawHoldOut(sites, oneSpare ? 1 : n - 2);
                string[] cohort = [.. sites.Where(s => !held.Contains(s) && (s == hostile || rng.NextDouble() > 0.1))];
                if (!cohort.Contains(hostile))
                {
                    search.Completed();
                    continue;
                }

                failed++;
                EliminationStep step = search.Failed(cohort);
                Assert.True(step.Found is null || step.Found == hostile, $"n = {n}: an honest site, {step.Found}, was named instead of {hostile}");
                Assert.True(step.Found is not null || step.Suspects.Contains(hostile));
                Assert.DoesNotContain(step.Suspects, held.Contains);
                found = step.Found;
            }

            Assert.Equal(hostile, found);
            if (!oneSpare)
            {
                // Each failed attempt had half the suspects held out and clears them: about log₂ n failures, plus the
                // first one and the dropouts' noise.
                Assert.True(failed <= (2 * Math.Ceiling(Math.Log2(n))) + 8, $"n = {n}: {failed} failed attempts");
            }
        }
    }

    /// <summary>
    /// A hostile site that attacks only when nobody is held out of the attempt (it sees the cohort in the announcement):
    /// while a search lasts every attempt has a hold-out, so it waits out the quiet window; each window is twice the last.
    /// Over 5,000 attempts of a 6-site federation it makes at most ⌈log₂(5,000 / 10)⌉ + 1 = 10 attempts fail, and no
    /// honest site is ever named.
    /// </summary>
    [Fact]
    public void Completed_SiteAttacksOnlyWhenNobodyIsHeldOut_FailsLogarithmicallyFewAttempts()
    {
        var rng = new Random(11);
        string[] sites = [.. Enumerable.Range(0, 6).Select(i => $"site-{i}")];
        var search = new EliminationSearch(k => rng.Next(k), firstQuietWindow: 10);
        int failed = 0;
        for (int attempt = 0; attempt < 5_000; attempt++)
        {
            IReadOnlyList<string> held = search.DrawHoldOut(sites, 3);
            if (held.Count == 0)
            {
                failed++;
                EliminationStep step = search.Failed(sites);
                Assert.Null(step.Found);
            }
            else
            {
                search.Completed();
            }
        }

        Assert.InRange(failed, 1, 10);
    }

    [Theory]
    [InlineData(3, 1, 3)]
    [InlineData(3, 2, 6)]
    [InlineData(3, 4, 24)]
    [InlineData(3, 13, 10_000)] // 3 · 2^12 = 12,288: capped
    [InlineData(1_000, 60, 10_000)] // no overflow however often a site was blamed
    [InlineData(0, 5, 0)] // exclusion off stays off
    public void ExclusionRounds_EachFurtherBlameDoublesTheExclusionUpToTheCap(int first, int blamed, int expected)
    {
        Assert.Equal(expected, RoundCoordinator.ExclusionRounds(first, blamed));
    }
}
