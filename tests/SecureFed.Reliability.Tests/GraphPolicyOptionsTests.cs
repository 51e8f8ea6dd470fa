using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Protocol;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The masking-graph policy as configured: <c>SecureFed:Graph</c> reaches the aggregator's round plan and the agent's
/// acceptance policy, defaults to complete, and anything else is refused at start-up with the setting named.
/// </summary>
public sealed class GraphPolicyOptionsTests
{
    [Fact]
    public void AggregatorOptions_GraphUnset_CompletePolicyPlansCompleteGraphAt500Sites()
    {
        AggregatorOptions options = BindAggregator(null);

        Assert.Equal("complete", options.Graph);
        Assert.Equal(GraphPolicy.Complete, options.GraphPolicy);
        Assert.Empty(options.Validate());
        Assert.Equal(new GraphPlan(500, 499, 251, true), options.PlanGraph(500));
    }

    [Fact]
    public void AggregatorOptions_GraphSparseFromConfiguration_RoundPlanIsHararyAt500Sites()
    {
        AggregatorOptions options = BindAggregator("sparse");

        Assert.Equal(GraphPolicy.Sparse, options.GraphPolicy);
        Assert.Empty(options.Validate());
        Assert.Equal(new GraphPlan(500, 130, 66, false), options.PlanGraph(500));
        // A plan the aggregator makes under "sparse" is one a site with Graph=sparse accepts, and one with Graph=complete does not.
        Assert.Null(GraphPlanner.CheckAnnounced(500, 130, 66, BindAgent("sparse").GraphPolicy));
        Assert.NotNull(GraphPlanner.CheckAnnounced(500, 130, 66, BindAgent(null).GraphPolicy));
    }

    [Theory]
    [InlineData("harary")]
    [InlineData("auto")]
    [InlineData("")]
    [InlineData("sparse graph")]
    public void AggregatorOptions_UnknownGraph_RefusedNamingTheSetting(string graph)
    {
        string error = Assert.Single(BindAggregator(graph).Validate());

        Assert.Equal($"SecureFed:Graph must be complete (complete masking graph up to 512 sites) or sparse (SecAgg+ Harary graph wherever the planner's bounds allow it), got '{graph}'.", error);
    }

    [Fact]
    public void AggregatorHost_UnknownGraph_StartUpFailsNamingTheSetting()
    {
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(AggregatorSettings("dense")).Build();

        var ex = Assert.Throws<OptionsValidationException>(() => AggregatorHost.Build(configuration, initialModel: null));

        Assert.Contains("SecureFed:Graph must be complete", ex.Message, StringComparison.Ordinal);
        Assert.Contains("got 'dense'", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, GraphPolicy.Complete)]
    [InlineData("sparse", GraphPolicy.Sparse)]
    [InlineData("Complete", GraphPolicy.Complete)]
    public void AgentOptions_Graph_BoundAndValid(string? graph, GraphPolicy expected)
    {
        AgentOptions options = BindAgent(graph);

        Assert.Equal(expected, options.GraphPolicy);
        Assert.DoesNotContain(options.Validate(), e => e.StartsWith("SecureFed:Graph", StringComparison.Ordinal));
    }

    [Fact]
    public void AgentOptions_UnknownGraph_RefusedNamingTheSetting()
    {
        Assert.Contains(BindAgent("harary").Validate(), e => e == "SecureFed:Graph must be complete (accept the complete masking graph only, up to 512 sites) or sparse (also accept a SecAgg+ Harary graph), got 'harary'.");
    }

    private static Dictionary<string, string?> AggregatorSettings(string? graph)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = "fed",
            ["SecureFed:KitDirectory"] = "kit",
            ["SecureFed:ModelSpecSha256"] = new string('a', 64),
        };
        if (graph is not null)
        {
            settings["SecureFed:Graph"] = graph;
        }

        return settings;
    }

    private static AggregatorOptions BindAggregator(string? graph)
    {
        var options = new AggregatorOptions();
        new ConfigurationBuilder().AddInMemoryCollection(AggregatorSettings(graph)).Build().GetSection(AggregatorOptions.Section).Bind(options);
        return options;
    }

    private static AgentOptions BindAgent(string? graph)
    {
        var settings = new Dictionary<string, string?> { ["SecureFed:Site"] = "site-a", ["SecureFed:Aggregator"] = "https://127.0.0.1:1" };
        if (graph is not null)
        {
            settings["SecureFed:Graph"] = graph;
        }

        var options = new AgentOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AgentOptions.Section).Bind(options);
        return options;
    }
}
