using SecureFed.Aggregator;
using Xunit;

namespace SecureFed.Federation.Tests;

/// <summary>
/// The out-of-bound search (docs/PROTOCOL.md "Blame", "Out-of-bound inputs"): simulated federations in which one site
/// puts every sum it joins out of bound. The search must find that site and never name an honest one, whatever the random
/// hold-outs, and it must need few out-of-bound attempts to do so.
/// </summary>
public sealed class EliminationSearchTests
{
    [Fact]
    public void Failed_FirstSum_SuspectsAreItsContributorsAndHalfIsHeldOut()
    {
        var search = new EliminationSearch(n => 0);
        EliminationStep step = search.Failed(["site-d", "site-a", "site-c", "site-b"], spare: 10);

        Assert.Null(step.Found);
        Assert.True(step.Restarted);
        Assert.Equal(["site-a", "site-b", "site-c", "site-d"], step.Suspects);
        Assert.Equal(2, step.HoldOut.Count);
        Assert.All(step.HoldOut, s => Assert.Contains(s, step.Suspects));
    }

    [Fact]
    public void Failed_NoSpareSites_HoldsNobodyOut()
    {
        var search = new EliminationSearch();
        EliminationStep step = search.Failed(["site-a", "site-b", "site-c"], spare: 0);

        Assert.Empty(step.HoldOut);
        Assert.Null(step.Found);
    }

    [Fact]
    public void Failed_SumsNarrowToOneSite_ThatSiteIsFoundAndTheSearchEnds()
    {
        var search = new EliminationSearch(n => 0);
        search.Failed(["site-a", "site-b", "site-c", "site-x"], spare: 2);
        EliminationStep second = search.Failed(["site-b", "site-x"], spare: 2);
        Assert.Equal(["site-b", "site-x"], second.Suspects);
        Assert.Single(second.HoldOut);

        EliminationStep third = search.Failed(["site-a", "site-c", "site-x"], spare: 2);
        Assert.Equal("site-x", third.Found);
        Assert.Empty(third.HoldOut);

        // Found: the next out-of-bound sum begins a new search.
        EliminationStep next = search.Failed(["site-a", "site-x"], spare: 0);
        Assert.True(next.Restarted);
        Assert.Equal(["site-a", "site-x"], next.Suspects);
    }

    [Fact]
    public void Failed_NoSuspectInTheSum_SearchRestartsFromItsContributors()
    {
        var search = new EliminationSearch(n => 0);
        search.Failed(["site-a", "site-b"], spare: 0);
        EliminationStep step = search.Failed(["site-c", "site-d"], spare: 0);

        Assert.True(step.Restarted);
        Assert.Equal(["site-c", "site-d"], step.Suspects);
    }

    /// <summary>
    /// 2,000 simulated federations of 3 to 40 sites, one hostile site at a random place, each attempt's cohort every site
    /// not held out (some honest sites also drop out at random); the hostile site breaks the bound whenever it contributes.
    /// The search names the hostile site every time, never an honest one, within 4·⌈log₂ n⌉ + 10 out-of-bound attempts
    /// (about 2·log₂ n expected) when it may hold half the suspects out; with one site spare per attempt (a 4-site
    /// federation needing 3) it still ends.
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
            string[] heldOut = [];
            int outOfBound = 0;
            string? found = null;
            for (int attempt = 0; attempt < 10_000 && found is null; attempt++)
            {
                // The attempt's contributors: everyone not held out, less a few honest dropouts.
                string[] contributors = [.. sites.Where(s => !heldOut.Contains(s) && (s == hostile || rng.NextDouble() > 0.1))];
                heldOut = [];
                if (!contributors.Contains(hostile))
                {
                    continue; // the round completes without it
                }

                outOfBound++;
                int spare = oneSpare ? 1 : contributors.Length - 2;
                EliminationStep step = search.Failed(contributors, spare);
                Assert.Contains(hostile, step.Suspects);
                Assert.True(step.Found is null || step.Found == hostile, $"n = {n}: an honest site, {step.Found}, was named instead of {hostile}");
                found = step.Found;
                heldOut = [.. step.HoldOut];
            }

            Assert.Equal(hostile, found);
            if (!oneSpare)
            {
                // Each out-of-bound attempt that follows a hold-out without the hostile site halves the suspects; one whose
                // hold-out had it completes, and the next (everyone back) narrows only by dropouts: about 2·log₂ n in all.
                Assert.True(outOfBound <= (4 * Math.Ceiling(Math.Log2(n))) + 10, $"n = {n}: {outOfBound} out-of-bound attempts");
            }
        }
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
