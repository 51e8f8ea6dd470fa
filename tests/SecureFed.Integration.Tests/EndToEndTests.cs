using System.Collections.Concurrent;
using SecureFed.Agent;
using SecureFed.Audit;
using SecureFed.Cli.Demo;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Integration.Tests;

/// <summary>Aggregator + 3 agents over real gRPC with mTLS on 127.0.0.1.</summary>
public sealed class EndToEndTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-e2e-").FullName;

    [Fact]
    public async Task Federation_OneSiteDropsAfterShareKeys_FusedModelIsWeightedAverageOfSurvivorsAndLogsVerify()
    {
        const int parameters = 5_000;
        string[] sites = ["site-de", "site-fr", "site-jp"];
        var initial = Enumerable.Range(0, parameters).Select(i => (float)Math.Cos(i) * 0.1f).ToArray();
        var options = new LocalFederationOptions
        {
            OutputDirectory = _dir,
            Sites = sites,
            Rounds = 2,
            Aggregator = new Dictionary<string, string>
            {
                ["MinSites"] = "3",
                ["TrainingTimeoutSeconds"] = "30",
                ["WeightCap"] = "1000",
                ["SiteNoiseMultiplier"] = "0.5",
                ["L2Clip"] = "10",
                ["EpsilonBudget"] = "1000",
            },
            Agent = new Dictionary<string, string> { ["CallTimeoutSeconds"] = "10", ["SiteEpsilonBudget"] = "1000", ["EpsilonBudget"] = "1000" },
            Drop = ("site-jp", 1, ProtocolStage.MaskedInputCollection),
        };
        long[] examples = [300, 700, 2000];
        var inputs = new ConcurrentDictionary<(string Site, long Round), uint[]>();
        var reports = new ConcurrentBag<AgentRoundReport>();

        await using LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, initial, FakeTrainer.SpecSha, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        // The masked-input stage of round 1 waits out site-jp (5 s); every other stage gets 60 s, never waited out, so that
        // a survivor starved on a loaded machine is not dropped with it.
        DropoutDeadline.ShortOnlyAt(federation.Aggregator.Services, 1, ProtocolStage.MaskedInputCollection, 5);
        var progress = new ConcurrentBag<Aggregator.RoundProgress>();
        federation.Coordinator.Progress += (_, p) => progress.Add(p);
        await federation.StartAgentsAsync(
            new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]),
            (site, _) => new FakeTrainer(site, parameters, examples[Array.IndexOf(sites, site)]),
            worker =>
            {
                worker.InputCaptured = (round, input) => inputs[(SiteOf(worker), round)] = input;
                worker.RoundFinished += (_, r) => reports.Add(r);
            },
            CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        await federation.WaitAsync(TimeSpan.FromMinutes(3), CancellationToken.None);

        // Round 1: site-jp dropped after ShareKeys; the fused model must be the survivors' weighted average.
        var rounds = federation.State.Store.ListRounds();
        Assert.Equal(2, rounds.Count(r => r.Status == Aggregator.Persistence.RoundStatus.Completed));
        byte[] v1 = federation.State.Store.LoadModel(1)!;
        float[] model1 = Aggregator.ModelState.FromBytes(v1, "v1");
        var codecParams = federation.State.Store.GetRound(rounds[0].Round)!;
        Assert.Equal(["site-de", "site-fr"], codecParams.Participants.Order());

        var survivorsSum = new uint[inputs[("site-de", 1)].Length]; // d + weight slot + federated-evaluation slots
        foreach (string site in new[] { "site-de", "site-fr" })
        {
            ModularVector.Add(survivorsSum, inputs[(site, 1)], 32);
        }

        double scale = ScaleOf(codecParams.ConfigurationJson);
        long totalWeight = ModularVector.ToSigned(survivorsSum[parameters], 32);
        Assert.Equal(300 + 700, totalWeight);
        for (int i = 0; i < parameters; i++)
        {
            double avg = ModularVector.ToSigned(survivorsSum[i], 32) / scale / (totalWeight / 1000.0);
            // Exact up to the float32 storage of the model.
            Assert.InRange(model1[i] - (initial[i] + avg), -1e-5, 1e-5);
        }

        // Round 2: everyone took part from model version 1.
        Assert.Equal(3, rounds[1].Participants.Count);
        Assert.Contains(reports, r => r.Site == "site-jp" && r.Round == 1 && !r.Completed);
        Assert.Equal(2, reports.Count(r => r.Site == "site-de" && r.Completed));

        // Every audit log verifies.
        Assert.True(AuditVerifier.Verify(Aggregator.AggregatorState.AuditDirectory(federation.AggregatorDataDirectory)).Ok);
        foreach (string site in sites)
        {
            var verification = AuditVerifier.Verify(AgentState.AuditDirectory(federation.AgentDataDirectory(site)));
            Assert.True(verification.Ok, verification.FirstProblem);
        }
    }

    [Fact]
    public async Task Federation_FiveAgents_SumOfPrivatizedInputsIsExactAndEverySiteAudited()
    {
        const int parameters = 20_000;
        string[] sites = ["site-a", "site-b", "site-c", "site-d", "site-e"];
        var initial = new float[parameters];
        var options = new LocalFederationOptions
        {
            OutputDirectory = _dir,
            Sites = sites,
            Rounds = 1,
            Aggregator = new Dictionary<string, string>
            {
                ["MinSites"] = "5",
                ["StageTimeoutSeconds"] = "60", // no deadline has to pass: never waited out
                ["TrainingTimeoutSeconds"] = "30",
                ["WeightCap"] = "1000",
                ["EpsilonBudget"] = "1000",
            },
            Agent = new Dictionary<string, string> { ["CallTimeoutSeconds"] = "10", ["SiteEpsilonBudget"] = "1000", ["EpsilonBudget"] = "1000" },
        };
        var inputs = new ConcurrentDictionary<string, uint[]>();

        await using LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, initial, FakeTrainer.SpecSha, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        await federation.StartAgentsAsync(
            new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]),
            (site, _) => new FakeTrainer(site, parameters, 500),
            worker => worker.InputCaptured = (_, input) => inputs[SiteOf(worker)] = input,
            CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        await federation.WaitAsync(TimeSpan.FromMinutes(3), CancellationToken.None);

        var round = Assert.Single(federation.State.Store.ListRounds());
        Assert.Equal(sites, round.Participants.Order());
        var sum = new uint[inputs.Values.First().Length]; // d + weight slot + federated-evaluation slots
        foreach (uint[] input in inputs.Values)
        {
            ModularVector.Add(sum, input, 32);
        }

        double scale = ScaleOf(round.ConfigurationJson);
        float[] model = Aggregator.ModelState.FromBytes(federation.State.Store.LoadModel(1)!, "v1");
        Assert.Equal(5 * 500, ModularVector.ToSigned(sum[parameters], 32));
        for (int i = 0; i < parameters; i++)
        {
            double expected = ModularVector.ToSigned(sum[i], 32) / scale / 2.5;
            Assert.InRange(model[i] - expected, -1e-5, 1e-5);
        }

        var report = AuditReport.Create([
            Aggregator.AggregatorState.AuditDirectory(federation.AggregatorDataDirectory),
            .. sites.Select(s => AgentState.AuditDirectory(federation.AgentDataDirectory(s)))]);
        Assert.Equal(0, report.FailedLogs);
        Assert.Equal(0, report.CrossCheckMismatches);
    }

    [Fact]
    public async Task Federation_ModelOfSeveralDownloadChunks_EveryAgentTrainsFromTheStoredModelBitForBit()
    {
        // Two full download chunks and a short third one (the service refills one message and one buffer per download).
        const int parameters = (2 * Aggregator.AggregationService.DownloadChunkValues) + 1_234;
        string[] sites = ["site-a", "site-b", "site-c"];
        var initial = Enumerable.Range(0, parameters).Select(i => (float)Math.Sin(i * 0.37) * 0.5f).ToArray();
        var options = new LocalFederationOptions
        {
            OutputDirectory = _dir,
            Sites = sites,
            Rounds = 2,
            Aggregator = new Dictionary<string, string>
            {
                ["MinSites"] = "3",
                ["StageTimeoutSeconds"] = "60", // no deadline has to pass: never waited out
                ["TrainingTimeoutSeconds"] = "30",
                ["WeightCap"] = "1000",
                ["EpsilonBudget"] = "1000",
            },
            Agent = new Dictionary<string, string> { ["CallTimeoutSeconds"] = "10", ["SiteEpsilonBudget"] = "1000", ["EpsilonBudget"] = "1000" },
        };
        var trainers = new ConcurrentBag<FakeTrainer>();

        await using LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, initial, FakeTrainer.SpecSha, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        await federation.StartAgentsAsync(
            new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]),
            (site, _) =>
            {
                var trainer = new FakeTrainer(site, parameters, 500);
                trainers.Add(trainer);
                return trainer;
            },
            _ => { },
            CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        await federation.WaitAsync(TimeSpan.FromMinutes(3), CancellationToken.None);

        float[] v1 = Aggregator.ModelState.FromBytes(federation.State.Store.LoadModel(1)!, "v1");
        Assert.NotEqual(initial, v1);
        Assert.Equal(sites.Length, trainers.Count);
        foreach (FakeTrainer trainer in trainers)
        {
            Assert.Equal(2, trainer.Seen.Count);
            Assert.Equal(1, trainer.Seen[0].Round);
            Assert.Equal(Bits(initial), Bits(trainer.Seen[0].Global));
            Assert.Equal(2, trainer.Seen[1].Round);
            Assert.Equal(Bits(v1), Bits(trainer.Seen[1].Global));
        }

        static int[] Bits(float[] values) => [.. values.Select(BitConverter.SingleToInt32Bits)];
    }

    [Fact]
    public async Task Federation_SiteAddedByAddSite_TakesPartInTheRoundItsInputInTheSumAndAudited()
    {
        // A hospital admitted after provisioning (FederationProvisioner.AddSite, what 'securefed provision add-site' runs),
        // the new manifest copied into the other kits as that command says: its agent takes part like the others.
        const int parameters = 5_000;
        string[] provisioned = ["site-a", "site-b"];
        const string added = "site-c";
        var options = new LocalFederationOptions
        {
            OutputDirectory = _dir,
            Sites = provisioned,
            AddedSites = [added],
            Rounds = 1,
            Aggregator = new Dictionary<string, string>
            {
                ["MinSites"] = "3",
                ["StageTimeoutSeconds"] = "60", // no deadline has to pass: never waited out
                ["TrainingTimeoutSeconds"] = "30",
                ["WeightCap"] = "1000",
                ["EpsilonBudget"] = "1000",
            },
            Agent = new Dictionary<string, string> { ["CallTimeoutSeconds"] = "10", ["SiteEpsilonBudget"] = "1000", ["EpsilonBudget"] = "1000" },
        };
        var examples = new Dictionary<string, long> { ["site-a"] = 300, ["site-b"] = 500, [added] = 200 };
        var initial = new float[parameters];
        var inputs = new ConcurrentDictionary<string, uint[]>();

        await using LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, initial, FakeTrainer.SpecSha, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(Path.Combine(_dir, "federation", "sites", added), federation.SiteKitDirectories[added]);
        await federation.StartAgentsAsync(
            new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]),
            (site, _) => new FakeTrainer(site, parameters, examples[site]),
            worker => worker.InputCaptured = (_, input) => inputs[SiteOf(worker)] = input,
            CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        await federation.WaitAsync(TimeSpan.FromMinutes(3), CancellationToken.None);

        var round = Assert.Single(federation.State.Store.ListRounds());
        Assert.Equal(Aggregator.Persistence.RoundStatus.Completed, round.Status);
        Assert.Equal(["site-a", "site-b", added], round.Participants.Order());
        Assert.Equal(["site-a", "site-b", added], inputs.Keys.Order());
        var sum = new uint[inputs[added].Length]; // d + weight slot + federated-evaluation slots
        foreach (uint[] input in inputs.Values)
        {
            ModularVector.Add(sum, input, 32);
        }

        // The weight slot counts site-c's examples: its masked input was in the unmasked sum.
        long totalWeight = ModularVector.ToSigned(sum[parameters], 32);
        Assert.Equal(300 + 500 + 200, totalWeight);
        double scale = ScaleOf(round.ConfigurationJson);
        float[] model = Aggregator.ModelState.FromBytes(federation.State.Store.LoadModel(1)!, "v1");
        for (int i = 0; i < parameters; i++)
        {
            double expected = ModularVector.ToSigned(sum[i], 32) / scale / (totalWeight / 1000.0);
            Assert.InRange(model[i] - expected, -1e-5, 1e-5);
        }

        // Every log verifies, site-c's included, and agrees with the aggregator's.
        var report = AuditReport.Create([
            Aggregator.AggregatorState.AuditDirectory(federation.AggregatorDataDirectory),
            .. provisioned.Append(added).Select(s => AgentState.AuditDirectory(federation.AgentDataDirectory(s)))]);
        Assert.Equal(0, report.FailedLogs);
        Assert.Equal(0, report.CrossCheckMismatches);
        Assert.True(AuditVerifier.Verify(AgentState.AuditDirectory(federation.AgentDataDirectory(added))).Ok);
        string aggregateProduced = Assert.Single(
            File.ReadAllLines(Path.Combine(Aggregator.AggregatorState.AuditDirectory(federation.AggregatorDataDirectory), AuditLog.LogFileName)),
            line => line.Contains("\"participants\"", StringComparison.Ordinal));
        Assert.Contains($"\"{added}\"", aggregateProduced, StringComparison.Ordinal);
    }

    private static string SiteOf(AgentWorker worker) => worker.SiteName;

    private static double ScaleOf(string configurationJson)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(configurationJson);
        return doc.RootElement.GetProperty("scale").GetDouble();
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
