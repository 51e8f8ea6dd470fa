using SecureFed.Aggregator;
using SecureFed.Federation;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// An update clip and site-level noise whose sum over a round's cohort overflows secure aggregation's 32-bit words
/// (<c>L2Clip</c> 1e308) stop the aggregator at start, naming the settings, before any site joins. Before, the first
/// start failed with the codec's message naming no setting, and a restart with budget already spent passed start-up and
/// died with a stack trace only once the sites had joined (the agents were told the federation had finished).
/// </summary>
public sealed class UpdatesDoNotFitTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-nofit-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task Start_ClipOverflowsTheWords_FailsNamingTheSettings()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-c"], new Dictionary<string, string> { ["L2Clip"] = "1e308" });

        Exception failure = await StartAndFailAsync(fed);

        Assert.StartsWith("SecureFed:L2Clip 1E+308 with SecureFed:SiteNoiseMultiplier", failure.Message, StringComparison.Ordinal);
        Assert.Contains("leaves secure aggregation no room for a round of 3 sites", failure.Message, StringComparison.Ordinal);
        Assert.Empty(fed.State.Store.ListRounds());
    }

    [Fact]
    public async Task Restart_BudgetSpentAndClipOverflowsTheWords_FailsAtStartNamingTheSettings()
    {
        await using TestFederation fed = await StoppedWithBudgetSpentAsync(rho: 0.01);
        fed.SetAggregatorSetting("L2Clip", "1e308");

        Exception failure = await StartAndFailAsync(fed);

        Assert.StartsWith("SecureFed:L2Clip 1E+308 with SecureFed:SiteNoiseMultiplier", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_MinSitesAboveTheFederationsSites_FailsNamingIt()
    {
        // Before, the aggregator logged "Waiting for at least 10 sites (have 0)" for ever: 3 sites can never be 10.
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-c"], new Dictionary<string, string> { ["MinSites"] = "10" });

        Exception failure = await StartAndFailAsync(fed);

        Assert.StartsWith("SecureFed:MinSites = 10 but the federation has 3 site(s): no round could ever open", failure.Message, StringComparison.Ordinal);
        Assert.Empty(fed.State.Store.ListRounds());
    }

    /// <summary>
    /// ConsistencyColluders = 100 is below the threshold of a round of MinSites = 300 sites (t = 151), so the options are
    /// valid; but a cohort of 513 sites uses a sparse masking graph with t = 66. Before, the aggregator started, the first
    /// round of all 513 sites was refused (an audit line) and the federation stopped. Now the start fails, naming the
    /// cohort and its t; with one more of the sites revoked no cohort can exceed 512 and it starts. One provisioning of
    /// 514 sites serves both starts (it is most of the test's time).
    /// </summary>
    [Fact]
    public async Task Start_CollusionValidAtMinSitesButNotAtTheFederationsSize_FailsNamingTheCohort()
    {
        string[] sites = [.. Enumerable.Range(1, 514).Select(i => $"site-{i:D3}")];
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), sites,
            new Dictionary<string, string> { ["MinSites"] = "300", ["ConsistencyColluders"] = "100" }, sites[0]);

        Exception failure = await StartAndFailAsync(fed);

        Assert.StartsWith("SecureFed:ConsistencyColluders = 100 is not below the threshold t = 66 of a round of 513 sites, the smallest of any cohort from SecureFed:MinSites = 300 to the federation's 513 sites not revoked", failure.Message, StringComparison.Ordinal);
        Assert.Empty(fed.State.Store.ListRounds());

        await fed.StopAggregatorAsync();
        string manifestPath = Path.Combine(fed.Provisioned.AggregatorKitDirectory, KitFiles.Manifest);
        FederationManifest.Load(manifestPath).WithRevoked(sites[1]).Save(manifestPath);

        await fed.StartAggregatorAsync();
        await Assert.ThrowsAsync<TimeoutException>(() => fed.Coordinator.Finished.WaitAsync(TimeSpan.FromSeconds(2)));
        Assert.Null(fed.Coordinator.Failure);
    }

    [Fact]
    public async Task Restart_BudgetSpentSoNoRoundFits_FinishesAtOnceWithoutARound()
    {
        // Far beyond the budget of 1000: what is left fits no round of 2 or 3 sites.
        await using TestFederation fed = await StoppedWithBudgetSpentAsync(rho: 1e6);

        await fed.StartAggregatorAsync();

        // Before, it waited for sites whose round the budget would refuse, saying nothing. No agent runs here.
        await fed.Coordinator.Finished.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Null(fed.Coordinator.Failure);
        Assert.Empty(fed.State.Store.ListRounds());
    }

    [Fact]
    public async Task Restart_BudgetSpentButARoundStillFits_WaitsForSites()
    {
        await using TestFederation fed = await StoppedWithBudgetSpentAsync(rho: 0.01);

        await fed.StartAggregatorAsync();

        await Assert.ThrowsAsync<TimeoutException>(() => fed.Coordinator.Finished.WaitAsync(TimeSpan.FromSeconds(2)));
        Assert.Null(fed.Coordinator.Failure);
    }

    /// <summary>A federation of three sites whose aggregator ran once, stopped, and has <paramref name="rho"/> (zCDP) recorded as spent.</summary>
    private async Task<TestFederation> StoppedWithBudgetSpentAsync(double rho)
    {
        TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-c"]);
        await fed.StartAggregatorAsync();
        await fed.StopAggregatorAsync();
        FederationBudget.Open(AggregatorState.PrivacyLedgerPath(fed.AggregatorDataDirectory), TestFederation.FederationName).Record(1, rho, 1e-5);
        return fed;
    }

    private static async Task<Exception> StartAndFailAsync(TestFederation fed)
    {
        try
        {
            await fed.StartAggregatorAsync();
        }
        catch (OperationCanceledException)
        {
            // The coordinator failed while the host was still starting, so the host cancelled its start (as it does for the CLI).
        }

        // No agent runs: a coordinator that waits for sites instead of failing at start never finishes.
        await fed.Coordinator.Finished.WaitAsync(TimeSpan.FromSeconds(30));
        return Assert.IsType<InvalidOperationException>(fed.Coordinator.Failure);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}
