using System.Globalization;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Privacy;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Split patient-level noise end to end over real gRPC on 127.0.0.1 (docs/PROTOCOL.md, "Split patient-level noise"):
/// the real aggregator announces k = 2 shares and one DP-SGD step; opted-in sites train one step at σ/√2 and record the
/// sum's ε and the larger collusion ε; a site that has not opted in declines with the reason in its audit log.
/// </summary>
public sealed class SplitNoiseRoundTests : IDisposable
{
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-split-round-").FullName;

    private static Dictionary<string, string> SplitSettings => new()
    {
        ["DpSgdNoiseShares"] = "2",
        ["DpSgdMaxSteps"] = "1",
        ["DpSgdNoiseMultiplier"] = "1.2",
        ["DpSgdSampleRate"] = "0.1",
        // No test here waits for a deadline to pass. 60 s, never waited out, so that a site starved for seconds on a
        // loaded machine is not dropped (TestFederation's default stage deadline is 3 s).
        ["StageTimeoutSeconds"] = "60",
        ["TrainingTimeoutSeconds"] = "60",
    };

    [Fact]
    public async Task Round_ThreeOptedInSites_CompletesOneStepAtSigmaOverSqrt2EachLedgerHasBothEpsilons()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), Sites, SplitSettings);
        await fed.StartAggregatorAsync();
        var trainers = Sites.ToDictionary(s => s, s => new FakeTrainer(s, TestFederation.Parameters, 100));
        foreach (string site in Sites)
        {
            fed.StartAgent(site, 100, trainer: trainers[site], configure: o =>
            {
                o.AcceptSplitPatientNoise = true;
                o.MaxCollusionEpsilon = 50;
            });
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));

        Assert.Null(fed.Coordinator.Failure);
        Assert.All(Sites, site => Assert.Contains(fed.Reports, r => r.Site == site && r.Round == 1 && r.Completed));
        string aggregatorAudit = File.ReadAllText(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName));
        Assert.Contains("\"dp_sgd_noise_shares\":2", aggregatorAudit, StringComparison.Ordinal);
        Assert.Contains("\"dp_sgd_max_steps\":1", aggregatorAudit, StringComparison.Ordinal);
        foreach (string site in Sites)
        {
            LocalTrainingPlan plan = Assert.Single(trainers[site].Plans);
            Assert.Equal(2, plan.NoiseShares);
            Assert.Equal(1, plan.MaxSteps);
            Assert.Equal(1.2 / Math.Sqrt(2), plan.SiteNoiseMultiplier, 12);

            PrivacyLedger ledger = PrivacyLedger.OpenReadOnly(Path.Combine(fed.AgentDataDirectory(site), "privacy-ledger.jsonl"));
            Assert.Equal([Guarantee.RecordCollusion, Guarantee.Record, Guarantee.Site], ledger.Entries.Select(e => e.Guarantee));
            var expectedRecord = new RdpAccountant(RdpOrders.Opacus);
            expectedRecord.AddSubsampledGaussian(0.1, 1.2, 1);
            var expectedCollusion = new RdpAccountant(RdpOrders.Opacus);
            expectedCollusion.AddSubsampledGaussian(0.1, 1.2 / Math.Sqrt(2), 1);
            double record = ledger.Spent(Guarantee.Record, 1e-5).Epsilon;
            double collusion = ledger.Spent(Guarantee.RecordCollusion, 1e-5).Epsilon;
            Assert.Equal(expectedRecord.GetPrivacySpent(1e-5).Epsilon, record, 12);
            Assert.Equal(expectedCollusion.GetPrivacySpent(1e-5).Epsilon, collusion, 12);
            Assert.True(collusion > record, string.Create(CultureInfo.InvariantCulture, $"{site}: collusion ε {collusion} ≤ ε {record}"));

            string audit = File.ReadAllText(Path.Combine(AgentState.AuditDirectory(fed.AgentDataDirectory(site)), AuditLog.LogFileName));
            Assert.Contains("\"noise_shares\":2", audit, StringComparison.Ordinal);
            Assert.Contains("\"collusion_epsilon\":", audit, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Round_SiteNotOptedIn_DeclinesWithReasonInItsAuditLog()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), Sites, SplitSettings);
        await fed.StartAggregatorAsync();
        var trainer = new FakeTrainer("site-c", TestFederation.Parameters, 100);
        foreach (string site in Sites)
        {
            fed.StartAgent(site, 100, trainer: site == "site-c" ? trainer : null, configure: o =>
            {
                o.AcceptSplitPatientNoise = site != "site-c";
                o.MaxCollusionEpsilon = site != "site-c" ? 50 : 0;
            });
        }

        const string reason = "the round splits the patient-level DP-SGD noise into 2 shares (each site adds σ/√2); this site has not opted in (SecureFed:AcceptSplitPatientNoise is false)";
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
        Assert.Contains($"\"{AuditEvents.Refusal}\"", audit, StringComparison.Ordinal);
        Assert.Empty(PrivacyLedger.OpenReadOnly(Path.Combine(fed.AgentDataDirectory("site-c"), "privacy-ledger.jsonl")).Entries);
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
