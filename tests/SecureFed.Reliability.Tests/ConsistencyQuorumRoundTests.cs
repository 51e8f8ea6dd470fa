using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Audit;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The aggregator's announced consistency quorum (<c>ConsistencyColluders</c>; docs/PROTOCOL.md, "Consistency quorum")
/// end to end over real gRPC on 127.0.0.1: sites that guard against one colluding site complete a round announced for
/// one, and a site that guards against more than the round announces declines before it trains, naming both settings
/// (before, it trained, signed and then refused the unmasking request, so the round aborted at its last stage).
/// </summary>
public sealed class ConsistencyQuorumRoundTests : IDisposable
{
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-quorum-round-").FullName;

    private static Dictionary<string, string> Settings(int colluders) => new()
    {
        ["ConsistencyColluders"] = colluders.ToString(System.Globalization.CultureInfo.InvariantCulture),
        // No test here waits for a deadline to pass (see SplitNoiseRoundTests).
        ["StageTimeoutSeconds"] = "60",
        ["TrainingTimeoutSeconds"] = "60",
    };

    [Fact]
    public async Task Round_AnnouncedForOneColluderSitesGuardingAgainstOne_CompletesAndAuditsTheQuorum()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), Sites, Settings(1));
        await fed.StartAggregatorAsync();
        foreach (string site in Sites)
        {
            fed.StartAgent(site, 100, configure: o => o.ColludingSites = 1);
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));

        Assert.Null(fed.Coordinator.Failure);
        Assert.All(Sites, site => Assert.Contains(fed.Reports, r => r.Site == site && r.Round == 1 && r.Completed));
        string aggregatorAudit = File.ReadAllText(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName));
        Assert.Contains("\"consistency_colluders\":1", aggregatorAudit, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Round_SiteGuardingAgainstMoreThanAnnounced_DeclinesBeforeTrainingNamingBothSettings()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), Sites, Settings(0));
        await fed.StartAggregatorAsync();
        var trainer = new FakeTrainer("site-c", TestFederation.Parameters, 100);
        foreach (string site in Sites)
        {
            fed.StartAgent(site, 100, trainer: site == "site-c" ? trainer : null, configure: o => o.ColludingSites = site == "site-c" ? 1 : 0);
        }

        const string reason = "this site guards against 1 colluding sites (SecureFed:ColludingSites) and answers the unmasking request only with 3 of the 3 consistency signatures, "
            + "but the round's consistency quorum is announced for 0 (2 signatures): ask the aggregator's operator to set SecureFed:ConsistencyColluders to at least 1, or lower this site's SecureFed:ColludingSites";
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (!fed.Reports.Any(r => r.Site == "site-c" && r.Outcome.StartsWith("declined", StringComparison.Ordinal)))
        {
            await Task.Delay(50, timeout.Token);
        }

        AgentRoundReport declined = fed.Reports.First(r => r.Site == "site-c");
        Assert.Equal("declined: " + reason, declined.Outcome);
        Assert.Empty(trainer.Plans);
        await fed.StopAgentsAsync();
        string audit = File.ReadAllText(Path.Combine(AgentState.AuditDirectory(fed.AgentDataDirectory("site-c")), AuditLog.LogFileName));
        Assert.Contains(reason, audit, StringComparison.Ordinal);
        string aggregatorAudit = File.ReadAllText(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName));
        Assert.DoesNotContain("consistency_colluders", aggregatorAudit, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
