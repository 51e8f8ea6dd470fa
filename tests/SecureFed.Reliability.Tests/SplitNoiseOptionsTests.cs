using Microsoft.Extensions.Configuration;
using SecureFed.Agent;
using SecureFed.Aggregator;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The split patient-level noise settings as configured (docs/PROTOCOL.md, "Split patient-level noise"): the
/// aggregator's <c>DpSgdMaxSteps</c> / <c>DpSgdNoiseShares</c> and the agent's <c>AcceptSplitPatientNoise</c> /
/// <c>MaxCollusionEpsilon</c> bind from configuration, default to today's behaviour, and every inconsistency is
/// refused with the settings named.
/// </summary>
public sealed class SplitNoiseOptionsTests
{
    [Fact]
    public void Defaults_NoSplitTheRecipesCapNoOptIn_Valid()
    {
        AggregatorOptions aggregator = BindAggregator([]);
        AgentOptions agent = BindAgent([]);

        Assert.Equal(20, aggregator.DpSgdMaxSteps); // the product recipe's 20 steps a round (0, no cap, up to session 42)
        Assert.Equal(0, aggregator.DpSgdNoiseShares);
        Assert.Empty(aggregator.Validate());
        Assert.False(agent.AcceptSplitPatientNoise);
        Assert.Equal(0, agent.MaxCollusionEpsilon);
        Assert.Empty(agent.Validate());
    }

    [Fact]
    public void AggregatorOptions_SharesWithOneStepWithinThreshold_BoundAndValid()
    {
        // 5 sites at least: t = 3 (complete graph), so 3 shares fit.
        AggregatorOptions options = BindAggregator(new() { ["DpSgdNoiseShares"] = "3", ["DpSgdMaxSteps"] = "1", ["MinSites"] = "5" });

        Assert.Equal(3, options.DpSgdNoiseShares);
        Assert.Equal(1, options.DpSgdMaxSteps);
        Assert.Empty(options.Validate());
    }

    [Fact]
    public void AggregatorOptions_SharesWithoutOneStepCap_RefusedNamingBothSettings()
    {
        string error = Assert.Single(BindAggregator(new() { ["DpSgdNoiseShares"] = "2", ["MinSites"] = "3" }).Validate());

        Assert.Equal("SecureFed:DpSgdNoiseShares = 2 (split patient-level noise) needs SecureFed:DpSgdMaxSteps = 1 (one DP-SGD step per round from the global model), got 20.", error);
    }

    [Fact]
    public void AggregatorOptions_SharesAboveThresholdOfSmallestCohort_RefusedNamingTheThreshold()
    {
        // MinSites = 3: t = 2 for the complete graph, so 3 shares could leave a sum of t sites with less than σ.
        string error = Assert.Single(BindAggregator(new() { ["DpSgdNoiseShares"] = "3", ["DpSgdMaxSteps"] = "1", ["MinSites"] = "3" }).Validate());

        Assert.StartsWith("SecureFed:DpSgdNoiseShares = 3 exceeds the threshold t = 2 of a round of SecureFed:MinSites = 3 sites", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AggregatorOptions_BothWrong_EveryProblemNamed()
    {
        IReadOnlyList<string> errors = BindAggregator(new() { ["DpSgdNoiseShares"] = "4", ["DpSgdMaxSteps"] = "3", ["MinSites"] = "2" }).Validate();

        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.Contains("needs SecureFed:DpSgdMaxSteps = 1", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("exceeds the threshold t = 2", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("-1", "DpSgdMaxSteps")]
    [InlineData("-2", "DpSgdNoiseShares")]
    public void AggregatorOptions_Negative_RefusedNamingTheSetting(string value, string name)
    {
        Assert.Contains(BindAggregator(new() { [name] = value }).Validate(), e => e.StartsWith($"SecureFed:{name} must be between 0 and", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("3", "1", null)]
    [InlineData("3", "2", "SecureFed:ConsistencyColluders = 2 is not below the threshold t = 2 of a round of SecureFed:MinSites = 3 sites: t colluding sites rebuild any site's secrets from their own shares, whatever the quorum; lower it or raise SecureFed:MinSites / SecureFed:Threshold.")]
    [InlineData("5", "2", null)]
    [InlineData("3", "-1", "SecureFed:ConsistencyColluders must be 0 (the masking graph's own consistency quorum) or the number of colluding sites the quorum guards against, got -1.")]
    public void AggregatorOptions_ConsistencyColluders_BelowTheSmallestThresholdOrRefusedNamingIt(string minSites, string colluders, string? expected)
    {
        IReadOnlyList<string> errors = BindAggregator(new() { ["MinSites"] = minSites, ["ConsistencyColluders"] = colluders }).Validate();

        if (expected is null)
        {
            Assert.Empty(errors);
        }
        else
        {
            Assert.Equal(expected, Assert.Single(errors));
        }
    }

    /// <summary>
    /// A value below the threshold of a round of MinSites = 300 sites (t = 151) passes <see cref="AggregatorOptions.Validate"/>,
    /// which knows no federation size; up to 512 sites every cohort's t is at least 151, but from 513 sites on the complete
    /// policy uses a sparse masking graph with t = 66. The cohorts up to the federation's size are checked at start-up:
    /// refused from a federation of 513 sites on, naming that cohort and its t.
    /// </summary>
    [Theory]
    [InlineData("complete", 300, 512, null)]
    [InlineData("complete", 300, 513, 513)]
    [InlineData("complete", 300, 10_000, 513)]
    [InlineData("complete", 600, 10_000, null)] // above 512 only the sparse graph's t = 66, and 100 > 66: refused at MinSites by Validate itself
    [InlineData("sparse", 300, 10_000, null)] // t = 66 already at MinSites: refused by Validate itself
    public void AggregatorOptions_CohortThresholdProblems_EveryCohortUpToTheFederationsSize(string graph, int minSites, int sites, int? refusedAt)
    {
        AggregatorOptions options = BindAggregator(new()
        {
            ["Graph"] = graph, ["MinSites"] = minSites.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["ConsistencyColluders"] = "100", ["DpSgdNoiseShares"] = "100", ["DpSgdMaxSteps"] = "1",
        });
        bool validAtMinSites = minSites <= 512 && graph == "complete";
        Assert.Equal(validAtMinSites, options.Validate().Count == 0);

        IReadOnlyList<string> problems = options.CohortThresholdProblems(sites);

        if (!validAtMinSites)
        {
            // The same refusal as Validate's, at MinSites.
            Assert.Equal(options.Validate(), problems);
        }
        else if (refusedAt is null)
        {
            Assert.Empty(problems);
        }
        else
        {
            string where = $"of a round of {refusedAt} sites, the smallest of any cohort from SecureFed:MinSites = {minSites} to the federation's {sites} sites not revoked " +
                "(from 513 sites on SecureFed:Graph = complete uses a sparse masking graph of 131 share holders per site, whose t does not grow with the cohort)";
            // Not "raise SecureFed:Threshold": the sparse graph's t = 66 is the smallest that tolerates 30% dropout; t = 101 of
            // 131 holders aborts most rounds. The fixes are a lower setting or a federation that keeps the complete graph.
            const string Fix = "or use a federation of at most 512 sites not revoked, where every cohort has the complete graph (not a larger SecureFed:Threshold: " +
                "that graph's t = 66 is the smallest that tolerates the planner's 30% dropout, and with a larger t rounds abort when fewer sites drop out).";
            Assert.Equal(
            [
                $"SecureFed:DpSgdNoiseShares = 100 exceeds the threshold t = 66 {where}: a sum of t sites would carry less than the announced DP-SGD noise; lower it to at most 66, {Fix}",
                $"SecureFed:ConsistencyColluders = 100 is not below the threshold t = 66 {where}: t colluding sites rebuild any site's secrets from their own shares, whatever the quorum; lower it to at most 65, {Fix}",
            ], problems);
        }
    }

    /// <summary>
    /// The fixes the start-up refusal names hold: a value at or below the sparse graph's t (66 shares, 65 colluders), or a
    /// federation of at most 512 sites not revoked, whose every cohort has the complete graph (t ≥ 151 from 300 sites).
    /// </summary>
    [Theory]
    [InlineData("65", "66", 10_000)]
    [InlineData("100", "100", 512)]
    public void AggregatorOptions_CohortThresholdProblems_TheNamedFixesPass(string colluders, string shares, int sites)
    {
        AggregatorOptions options = BindAggregator(new()
        {
            ["MinSites"] = "300", ["ConsistencyColluders"] = colluders, ["DpSgdNoiseShares"] = shares, ["DpSgdMaxSteps"] = "1",
        });

        Assert.Empty(options.Validate());
        Assert.Empty(options.CohortThresholdProblems(sites));
    }

    /// <summary>
    /// MinSites itself a size with a sparse graph (above 512 under the complete policy, from 132 under the sparse one): a
    /// larger MinSites keeps t = 66, so the refusal names the sparse graph and its fixes, not "raise SecureFed:MinSites".
    /// </summary>
    [Theory]
    [InlineData("complete", "600", "or use SecureFed:MinSites at most 512 and a federation of at most 512 sites not revoked")]
    [InlineData("sparse", "300", "or use SecureFed:Graph = complete with a federation of at most 512 sites not revoked")]
    public void AggregatorOptions_MinSitesWithASparseGraph_RefusalNamesTheSparseGraphsFixes(string graph, string minSites, string fix)
    {
        AggregatorOptions options = BindAggregator(new()
        {
            ["Graph"] = graph, ["MinSites"] = minSites, ["ConsistencyColluders"] = "100", ["DpSgdNoiseShares"] = "100", ["DpSgdMaxSteps"] = "1",
        });

        IReadOnlyList<string> errors = options.Validate();

        Assert.Equal(2, errors.Count);
        Assert.All(errors, e =>
        {
            Assert.Contains($"t = 66 of a round of SecureFed:MinSites = {minSites} sites (at that size SecureFed:Graph = {graph} uses a sparse masking graph of 131 share holders per site", e, StringComparison.Ordinal);
            Assert.Contains(fix, e, StringComparison.Ordinal);
            Assert.DoesNotContain("raise SecureFed:", e, StringComparison.Ordinal);
        });
        Assert.Contains("lower it to at most 66, " + fix, errors[0], StringComparison.Ordinal);
        Assert.Contains("lower it to at most 65, " + fix, errors[1], StringComparison.Ordinal);
    }

    [Fact]
    public void AgentOptions_OptInWithCollusionBudget_BoundAndValid()
    {
        AgentOptions options = BindAgent(new() { ["AcceptSplitPatientNoise"] = "true", ["MaxCollusionEpsilon"] = "20" });

        Assert.True(options.AcceptSplitPatientNoise);
        Assert.Equal(20, options.MaxCollusionEpsilon);
        Assert.Empty(options.Validate());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    public void AgentOptions_OptInWithoutPositiveCollusionBudget_RefusedNamingBothSettings(string? budget)
    {
        var settings = new Dictionary<string, string?> { ["AcceptSplitPatientNoise"] = "true" };
        if (budget is not null)
        {
            settings["MaxCollusionEpsilon"] = budget;
        }

        string error = Assert.Single(BindAgent(settings).Validate());

        Assert.StartsWith("SecureFed:MaxCollusionEpsilon must be a positive number when SecureFed:AcceptSplitPatientNoise is true", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AgentOptions_OptInWithAdam_RefusedNamingTheOptimiser()
    {
        string error = Assert.Single(BindAgent(new() { ["AcceptSplitPatientNoise"] = "true", ["MaxCollusionEpsilon"] = "20", ["Optimizer"] = "adam" }).Validate());

        Assert.StartsWith("SecureFed:AcceptSplitPatientNoise needs SecureFed:Optimizer = sgd", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AgentOptions_NegativeCollusionBudgetWithoutOptIn_Refused()
    {
        string error = Assert.Single(BindAgent(new() { ["MaxCollusionEpsilon"] = "-1" }).Validate());

        Assert.Equal("SecureFed:MaxCollusionEpsilon must be 0 (unset) or a positive number, got -1.", error);
    }

    [Fact]
    public void AggregatorOptions_LayerScalesFromConfiguration_BoundInOrderAndValid()
    {
        AggregatorOptions options = BindAggregator(new() { ["DpSgdLayerScales:0"] = "0.5", ["DpSgdLayerScales:1"] = "2", ["DpSgdLayerScales:2"] = "1.25" });

        Assert.Equal([0.5f, 2f, 1.25f], options.DpSgdLayerScales);
        Assert.Empty(options.Validate());
        Assert.Empty(BindAggregator([]).DpSgdLayerScales);
    }

    [Fact]
    public void AggregatorOptions_LayerScalesOutOfRange_EachNamed()
    {
        IReadOnlyList<string> errors = BindAggregator(new() { ["DpSgdLayerScales:0"] = "0", ["DpSgdLayerScales:1"] = "2", ["DpSgdLayerScales:2"] = "1e9" }).Validate();

        Assert.Equal(["SecureFed:DpSgdLayerScales:0 must be a number in [1E-06, 1000000], got 0.", "SecureFed:DpSgdLayerScales:2 must be a number in [1E-06, 1000000], got 1E+09."], errors);
    }

    private static AggregatorOptions BindAggregator(Dictionary<string, string?> extra) => AggregatorOptionsBinding.Bind(extra);

    private static AgentOptions BindAgent(Dictionary<string, string?> extra)
    {
        var settings = new Dictionary<string, string?> { ["SecureFed:Site"] = "site-a", ["SecureFed:Aggregator"] = "https://127.0.0.1:1" };
        foreach ((string key, string? value) in extra)
        {
            settings["SecureFed:" + key] = value;
        }

        var options = new AgentOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AgentOptions.Section).Bind(options);
        return options;
    }
}
