namespace SecureFed.Reliability.Tests;

/// <summary>
/// An aggregator whose site-level budget allows not even one round (one round at z = 0.5 spends ε 10.73, so the
/// defaults before session 30 — z 0.5, budget 10 — were such a federation) fails at start with an error naming the
/// smallest SiteNoiseMultiplier that fits its rounds, before any site joins. Before, it waited for the sites, logged a
/// warning, and "finished after 0 rounds" with exit code 0.
/// </summary>
public sealed class BudgetAllowsNoRoundTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-noround-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task Start_BudgetBelowOneRound_FailsNamingTheNoiseThatFits()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-c"], new Dictionary<string, string>
        {
            ["Rounds"] = "10",
            ["L2Clip"] = "1",
            ["SiteNoiseMultiplier"] = "0.5",
            ["EpsilonBudget"] = "10",
        });
        try
        {
            await fed.StartAggregatorAsync();
        }
        catch (OperationCanceledException)
        {
            // The coordinator failed while the host was still starting, so the host cancelled its start (as it does for the CLI).
        }

        await fed.Coordinator.Finished.WaitAsync(TimeSpan.FromSeconds(30));

        Exception failure = Assert.IsType<InvalidOperationException>(fed.Coordinator.Failure);
        Assert.StartsWith("SecureFed:EpsilonBudget 10 allows no round at all: site-level epsilon would reach 10.73 > budget 10.00", failure.Message, StringComparison.Ordinal);
        Assert.Contains("set SecureFed:SiteNoiseMultiplier to at least 1.68 to run all 10 rounds within ε 10", failure.Message, StringComparison.Ordinal);
        Assert.Empty(fed.State.Store.ListRounds());
    }

    [Fact]
    public async Task Start_DefaultSiteLevelSettings_TheirRoundsFit()
    {
        var defaults = new Aggregator.AggregatorOptions();
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-c"], new Dictionary<string, string>
        {
            ["Rounds"] = defaults.Rounds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["L2Clip"] = defaults.L2Clip.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["SiteNoiseMultiplier"] = defaults.SiteNoiseMultiplier.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["EpsilonBudget"] = defaults.EpsilonBudget.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        });
        await fed.StartAggregatorAsync();

        Task finished = fed.Coordinator.Finished;
        Assert.False(await Task.WhenAny(finished, Task.Delay(TimeSpan.FromSeconds(3))) == finished, $"the aggregator stopped: {fed.Coordinator.Failure?.Message}");
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}
