using SecureFed.Aggregator;

namespace SecureFed.Federation.Tests;

/// <summary>
/// The start-up warning (log event 48) that any one site can abort every round because t equals the number of holders
/// of a site's shares: with a sparse masking graph that is k + 1, not n, and more sites or a larger MinSites keep the
/// same k and t, so the advice must be a smaller Threshold. Before the fix the check compared t with n only (never true
/// with a sparse graph: no warning at all for t = 131 of 131 holders) and always advised "Add sites, or raise
/// SecureFed:MinSites", which a cohort that becomes sparse does not fix (review61).
/// </summary>
public sealed class OneSiteCanAbortTests
{
    /// <summary>Options whose MinSites is the whole federation (a smaller MinSites with a configured Threshold is a cohort of its own).</summary>
    private static AggregatorOptions Options(string graph, int threshold, int sites)
        => new() { Federation = "fed", KitDirectory = "kit", ModelSpecSha256 = new string('a', 64), Graph = graph, Threshold = threshold, MinSites = sites };

    [Theory]
    [InlineData("sparse", 150, 132)]    // sparse from k + 2 = 132 sites
    [InlineData("complete", 600, 513)]     // sparse above 512 sites
    public void OneSiteCanAbort_SparseGraphThresholdAtItsHolders_WarnsAndAdvisesOnlyASmallerThreshold(string graph, int sites, int sparseFrom)
    {
        var warning = RoundCoordinator.OneSiteCanAbort(Options(graph, threshold: 200, sites), sites);

        Assert.NotNull(warning);
        (int t, int n, string which, int holders, string fix) = warning.Value;
        Assert.Equal((131, sites, 131), (t, n, holders));
        Assert.Equal("every site of the federation", which);
        Assert.Equal(
            $"Adding sites or raising SecureFed:MinSites does not change this: from {sparseFrom} sites on SecureFed:Graph = {graph} uses a sparse masking graph " +
            "of 131 share holders per site, whatever the cohort size. Lower SecureFed:Threshold below 131 (0 = the planner's t = 66) so that t < 131",
            fix);

        // The named fix works: a smaller Threshold (or the planner's) leaves no such cohort.
        Assert.Null(RoundCoordinator.OneSiteCanAbort(Options(graph, threshold: 130, sites), sites));
        Assert.Null(RoundCoordinator.OneSiteCanAbort(Options(graph, threshold: 0, sites), sites));
    }

    [Fact]
    public void OneSiteCanAbort_CompleteCohortWhoseLargerCohortsAreSparse_DoesNotAdviseAddingSitesPastTheSwitch()
    {
        // 100 sites under Graph = sparse: complete graph, t = 100 = n. 132 or more sites would get the sparse graph,
        // where Threshold = 200 makes t = 131 = its holders again.
        var warning = RoundCoordinator.OneSiteCanAbort(Options("sparse", threshold: 200, 100), 100);

        Assert.NotNull(warning);
        Assert.Equal((100, 100, 100), (warning.Value.Threshold, warning.Value.Sites, warning.Value.Holders));
        Assert.Equal(
            "Lower SecureFed:Threshold so that t < n (adding sites or raising SecureFed:MinSites helps only below 132 sites: from there on SecureFed:Graph = sparse " +
            "uses a sparse masking graph of 131 share holders per site, where SecureFed:Threshold = 200 makes t = 131 again), or add sites so that t < n below 132",
            warning.Value.Fix);
        Assert.NotNull(RoundCoordinator.OneSiteCanAbort(Options("sparse", threshold: 200, 132), 132));
        Assert.Null(RoundCoordinator.OneSiteCanAbort(Options("sparse", threshold: 120, 132), 132));
    }

    [Theory]
    [InlineData("complete", 0, 2, 2)]
    [InlineData("complete", 3, 3, 3)]
    [InlineData("sparse", 0, 2, 2)]
    [InlineData("complete", 100, 100, 100)] // Threshold below the sparse graph's 131 holders: more sites do help
    public void OneSiteCanAbort_CompleteGraph_AdvisesMoreSitesOrASmallerThreshold(string graph, int threshold, int sites, int t)
    {
        var warning = RoundCoordinator.OneSiteCanAbort(Options(graph, threshold, sites), sites);

        Assert.NotNull(warning);
        Assert.Equal((t, sites, sites), (warning.Value.Threshold, warning.Value.Sites, warning.Value.Holders));
        Assert.Equal("Add sites, or raise SecureFed:MinSites / lower SecureFed:Threshold so that t < n", warning.Value.Fix);
    }

    [Theory]
    [InlineData("sparse", 0, 150)]
    [InlineData("complete", 100, 600)]
    [InlineData("complete", 0, 3)]
    [InlineData("complete", 0, 600)]
    public void OneSiteCanAbort_ThresholdBelowTheHolders_NoWarning(string graph, int threshold, int sites)
        => Assert.Null(RoundCoordinator.OneSiteCanAbort(Options(graph, threshold, sites), sites));
}
