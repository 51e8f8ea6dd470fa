using System.Text.Json;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Protocol;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Server Adam in the product (<c>SecureFed:ServerOptimizer = adam</c>) end to end: the real aggregator and agents over
/// mTLS gRPC run 2 rounds, the aggregator and the agents stop, the aggregator restarts from its data directory and runs 2
/// more. Every stored model version must be bit for bit what the experiment's rule computes without any restart
/// (<see cref="FederatedAveraging.AverageUpdate"/> then <see cref="ServerOptimizer.Step"/> on the same unmasked sums,
/// one optimizer through all rounds), and the audit log names the rule of every aggregate.
/// </summary>
public sealed class ServerAdamRestartTests : IDisposable
{
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private static readonly long[] Examples = [300, 700, 1000];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-server-adam-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }

    [Fact]
    public async Task Rounds_RestartInTheMiddle_ModelsEqualTheUninterruptedExperimentRuleBitForBit()
    {
        // Arrange
        var options = new ServerOptimizerOptions { Kind = ServerOptimizerKind.Adam, LearningRate = 0.05, Tau = 1e-3, Beta1 = 0.9, Beta2 = 0.99 };
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), Sites, new Dictionary<string, string>
        {
            ["Rounds"] = "2",
            ["ServerOptimizer"] = "adam",
            ["ServerLearningRate"] = "0.05",
            ["ServerTau"] = "0.001",
            // No test here waits for a deadline to pass. 60 s, never waited out, so that a site starved for seconds on a
            // loaded machine is not dropped (TestFederation's default stage deadline is 3 s).
            ["StageTimeoutSeconds"] = "60",
            ["TrainingTimeoutSeconds"] = "60",
        });

        // Act: 2 rounds, stop everything, 2 more rounds after the restart.
        await fed.StartAggregatorAsync();
        StartAgents(fed);
        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));
        await fed.StopAgentsAsync();
        await fed.StopAggregatorAsync();
        fed.SetAggregatorSetting("Rounds", "4");
        await fed.StartAggregatorAsync();
        Assert.Equal(2, fed.State.ServerRule.Steps);
        StartAgents(fed);
        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));

        // Assert: replay the completed rounds' sums (the contributors' privatized inputs; the masks cancel) through one
        // uninterrupted experiment optimizer.
        IReadOnlyList<RoundRecord> completed = [.. fed.State.Store.ListRounds().Where(r => r.Status == RoundStatus.Completed)];
        Assert.Equal(4, completed.Count);
        var experiment = new ServerOptimizer(options);
        float[] expected = fed.InitialModel;
        for (int version = 1; version <= completed.Count; version++)
        {
            RoundRecord round = completed[version - 1];
            UpdateCodec codec = Codec(Sites.Length); // the cohort the round opened with (every site contributed)
            uint[] sum = new uint[codec.VectorLength];
            foreach (string site in round.Participants)
            {
                uint[] input = fed.Inputs[(site, round.Round)];
                for (int i = 0; i < sum.Length; i++)
                {
                    sum[i] += input[i];
                }
            }

            uint mask = codec.BitWidth == 32 ? uint.MaxValue : (1u << codec.BitWidth) - 1;
            for (int i = 0; i < sum.Length; i++)
            {
                sum[i] &= mask;
            }

            expected = experiment.Step(expected, FederatedAveraging.AverageUpdate(codec, sum, out _));
            float[] stored = ModelState.FromBytes(fed.State.Store.LoadModel(version)!, $"v{version}");
            Assert.Equal(ModelState.ToBytes(expected), ModelState.ToBytes(stored));
        }

        SavedServerOptimizer saved = fed.State.Store.LoadServerOptimizer()!;
        Assert.Equal(4, saved.ModelVersion);
        Assert.Equal(4, saved.Steps);
        Assert.Equal(experiment.FirstMoment.ToArray(), saved.First);
        Assert.Equal(experiment.SecondMoment.ToArray(), saved.Second);
        Assert.NotEqual(ModelState.ToBytes(fed.InitialModel), ModelState.ToBytes(expected));

        string[] produced = [.. File.ReadAllLines(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName))
            .Where(l => l.Contains(AuditEvents.AggregateProduced, StringComparison.Ordinal))];
        Assert.Equal(4, produced.Length);
        for (int i = 0; i < produced.Length; i++)
        {
            using var line = JsonDocument.Parse(produced[i]);
            JsonElement rule = Find(line.RootElement, "server_update") ?? throw new InvalidOperationException("no server_update in " + produced[i]);
            Assert.Equal("adam", rule.GetProperty("rule").GetString());
            Assert.Equal(0.05, rule.GetProperty("learning_rate").GetDouble());
            Assert.Equal(0.001, rule.GetProperty("tau").GetDouble());
            Assert.Equal(i + 1, rule.GetProperty("step").GetInt64());
        }
    }

    private static JsonElement? Find(JsonElement element, string name)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        foreach (JsonProperty property in element.EnumerateObject())
        {
            if (property.NameEquals(name))
            {
                return property.Value;
            }

            if (Find(property.Value, name) is JsonElement found)
            {
                return found;
            }
        }

        return null;
    }

    private static void StartAgents(TestFederation fed)
    {
        for (int i = 0; i < Sites.Length; i++)
        {
            fed.StartAgent(Sites[i], Examples[i]);
        }
    }

    /// <summary>The codec the aggregator plans for a round of <paramref name="n"/> sites with TestFederation's settings.</summary>
    private static UpdateCodec Codec(int n)
    {
        int threshold = FederatedAveraging.Threshold(GraphPlanner.Plan(n, GraphPolicy.Complete), 0);
        return FederatedAveraging.PlanRound(TestFederation.Parameters, 10, n, threshold, 0.5, 1000, EvaluationLayout.Create([], 100_000)).Codec;
    }
}
