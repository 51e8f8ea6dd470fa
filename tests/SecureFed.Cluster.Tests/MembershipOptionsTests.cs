using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Orleans.Configuration;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The failure-detection settings of <c>SecureFed:Cluster</c> (probe timeout, missed probes, probed silos, death votes,
/// table refresh, defunct-row expiry): validated with each problem named, bound from configuration, and handed to
/// Orleans by <see cref="ClusterHost.BuildSilo"/>; unset, Orleans' defaults, which docs/cluster.md §4 states.
/// </summary>
public sealed class MembershipOptionsTests
{
    private const string Connection = "Host=127.0.0.1;Database=securefed";

    [Fact]
    public void Validate_MembershipSettingsOutOfRange_EachNamedAtOnce()
    {
        var options = new AggregatorClusterOptions
        {
            ConnectionString = Connection,
            ProbeTimeoutSeconds = 0,
            TableRefreshSeconds = double.NaN,
            DefunctSiloExpirationHours = 0.5,
            MissedProbesLimit = 0,
            ProbedSilos = 101,
            VotesForDeathDeclaration = -1,
        };

        IReadOnlyList<string> problems = options.Validate();

        Assert.Contains("SecureFed:Cluster:ProbeTimeoutSeconds must be between 0.1 and 300 seconds, got 0.", problems);
        Assert.Contains("SecureFed:Cluster:TableRefreshSeconds must be between 0.1 and 3600 seconds, got NaN.", problems);
        Assert.Contains("SecureFed:Cluster:DefunctSiloExpirationHours must be between 1 and 8784 hours, got 0.5.", problems);
        Assert.Contains("SecureFed:Cluster:MissedProbesLimit must be between 1 and 100, got 0.", problems);
        Assert.Contains("SecureFed:Cluster:ProbedSilos must be between 1 and 100, got 101.", problems);
        Assert.Contains("SecureFed:Cluster:VotesForDeathDeclaration must be between 1 and 100, got -1.", problems);
        Assert.Equal(6, problems.Count);
    }

    [Fact]
    public void Validate_MoreDeathVotesThanProbers_RefusedNamingBoth()
    {
        var explicitProbers = new AggregatorClusterOptions { ConnectionString = Connection, ProbedSilos = 2, VotesForDeathDeclaration = 3 };
        var defaultProbers = new AggregatorClusterOptions { ConnectionString = Connection, VotesForDeathDeclaration = 11 };

        Assert.Equal(
            "SecureFed:Cluster:VotesForDeathDeclaration must be at most SecureFed:Cluster:ProbedSilos (2): a silo is declared dead by the silos that probe it, got 3.",
            Assert.Single(explicitProbers.Validate()));
        Assert.Equal(
            "SecureFed:Cluster:VotesForDeathDeclaration must be at most SecureFed:Cluster:ProbedSilos (10, Orleans' default): a silo is declared dead by the silos that probe it, got 11.",
            Assert.Single(defaultProbers.Validate()));
        Assert.Empty(new AggregatorClusterOptions { ConnectionString = Connection, ProbedSilos = 5, VotesForDeathDeclaration = 4 }.Validate());
    }

    [Fact]
    public void BuildSilo_MembershipSettingsFromConfiguration_ReachOrleans()
    {
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["SecureFed:Cluster:ConnectionString"] = Connection,
            ["SecureFed:Cluster:Tls"] = "off",
            ["SecureFed:Cluster:ProbeTimeoutSeconds"] = "1.5",
            ["SecureFed:Cluster:MissedProbesLimit"] = "2",
            ["SecureFed:Cluster:ProbedSilos"] = "4",
            ["SecureFed:Cluster:VotesForDeathDeclaration"] = "1",
            ["SecureFed:Cluster:TableRefreshSeconds"] = "10",
            ["SecureFed:Cluster:DefunctSiloExpirationHours"] = "24",
        }).Build();
        var options = new AggregatorClusterOptions();
        configuration.GetSection(AggregatorClusterOptions.Section).Bind(options);

        ClusterMembershipOptions membership = BuiltMembership(options);

        Assert.Equal(TimeSpan.FromSeconds(1.5), membership.ProbeTimeout);
        Assert.Equal(2, membership.NumMissedProbesLimit);
        Assert.Equal(4, membership.NumProbedSilos);
        Assert.Equal(1, membership.NumVotesForDeathDeclaration);
        Assert.Equal(TimeSpan.FromSeconds(10), membership.TableRefreshTimeout);
        Assert.Equal(TimeSpan.FromHours(24), membership.DefunctSiloExpiration);
    }

    [Fact]
    public void BuildSilo_NoMembershipSettings_OrleansDefaultsAsDocumented()
    {
        ClusterMembershipOptions membership = BuiltMembership(new AggregatorClusterOptions { ConnectionString = Connection, Tls = "off" });

        // docs/cluster.md §4 states these defaults; if Orleans changes one, the table must change with it.
        Assert.Equal(TimeSpan.FromSeconds(5), membership.ProbeTimeout);
        Assert.Equal(3, membership.NumMissedProbesLimit);
        Assert.Equal(10, membership.NumProbedSilos);
        Assert.Equal(2, membership.NumVotesForDeathDeclaration);
        Assert.Equal(TimeSpan.FromSeconds(60), membership.TableRefreshTimeout);
        Assert.Equal(TimeSpan.FromDays(7), membership.DefunctSiloExpiration);
    }

    private static ClusterMembershipOptions BuiltMembership(AggregatorClusterOptions options)
    {
        using IHost silo = ClusterHost.BuildSilo("membership-options", options, kit: null);
        return silo.Services.GetRequiredService<IOptions<ClusterMembershipOptions>>().Value;
    }
}
