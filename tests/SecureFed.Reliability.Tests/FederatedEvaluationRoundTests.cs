using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Operations;
using SecureFed.Audit;
using SecureFed.Protocol;
using SecureFed.Tagger;
using SecureFed.Testing;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Federated evaluation end to end over gRPC (docs/PROTOCOL.md, "Federated evaluation"): the aggregator's federation
/// score equals the score of the pooled dev predictions of exactly the sites in the sum, and no site's own score
/// appears in anything the aggregator logs or audits.
/// </summary>
public sealed class FederatedEvaluationRoundTests : IDisposable
{
    private static readonly string[] Sites = ["site-a", "site-b", "site-c", "site-d"];
    private static readonly string[] Scored = ["Disease", "Drug"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-fedeval-").FullName;

    [Fact]
    public async Task TwoRounds_OneSiteDropsBeforeMaskedInput_FederationScoreEqualsPooledScoreOfSurvivorsAndNoSiteScoreIsLogged()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), Sites, new Dictionary<string, string>
        {
            ["Rounds"] = "2",
            ["EvaluationEntityTypes:0"] = "Drug",
            ["EvaluationEntityTypes:1"] = "Disease",
            ["EvaluationCountCap"] = "500",
        });
        var logs = new CapturingLogger();
        await fed.StartAggregatorAsync(logs: logs, minimumLevel: LogLevel.Information);
        // Round 1's masked-input stage waits out site-d; no other deadline may pass (the rounds are looked up by number).
        DropoutDeadline.ShortOnlyAt(fed.Aggregator!.Services, 1, ProtocolStage.MaskedInputCollection, 3);
        var completed = new ConcurrentDictionary<long, RoundProgress>();
        fed.Coordinator.Progress += (_, p) =>
        {
            if (p.Stage == "completed")
            {
                completed[p.Round] = p;
            }
        };
        var trainers = new Dictionary<string, ScoringTrainer>(StringComparer.Ordinal);
        for (int i = 0; i < Sites.Length; i++)
        {
            var trainer = new ScoringTrainer(new FakeTrainer(Sites[i], TestFederation.Parameters, 100 * (i + 1)), Dev(i), 0.08 + (0.07 * i), i);
            trainers[Sites[i]] = trainer;
            // site-d goes silent before its masked input in round 1: its counts must not be in that round's score.
            fed.StartAgent(Sites[i], 100 * (i + 1), Sites[i] == "site-d" ? new DropoutHook(1, ProtocolStage.MaskedInputCollection) : null, trainer: trainer);
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(120));
        var console = new OperatorConsole(fed.Coordinator, fed.Aggregator!.Services.GetRequiredService<AggregatorState>(),
            fed.Aggregator.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<AggregatorOptions>>(), fed.Aggregator.Services.GetRequiredService<AggregatorTelemetry>(), TimeProvider.System);

        Assert.Null(fed.Coordinator.Failure);
        string audit = await File.ReadAllTextAsync(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName));
        string logged = string.Join("\n", logs.Lines.Select(l => l.Message));
        var published = new HashSet<double>();
        foreach (long round in new long[] { 1, 2 })
        {
            Assert.True(completed.TryGetValue(round, out RoundProgress? progress), $"round {round} did not complete: {logged}");
            string[] inSum = [.. progress.Participants];
            Assert.Equal(round == 1 ? ["site-a", "site-b", "site-c"] : Sites, inSum.Order(StringComparer.Ordinal));

            // The pooled dev predictions of exactly the sites in the sum, scored by the project's conlleval.
            EvaluationResult pooled = TaggerEvaluator.Score(
                [.. inSum.SelectMany(s => trainers[s].Gold)],
                [.. inSum.SelectMany(s => trainers[s].Predictions(round))]);
            FederatedEvaluation federated = Assert.IsType<FederatedEvaluation>(progress.Evaluation);
            Assert.Equal(inSum.Length, federated.Evaluators);
            Assert.Equal(Counts(pooled.Overall), federated.Overall);
            Assert.Equal(pooled.F1, federated.F1, 12);
            foreach (string type in Scored)
            {
                Assert.Equal(Counts(pooled.PerType[type]), federated.PerType[type]);
            }

            // The operator console's round history shows the same federation-level score.
            ConsoleRound shown = fed.Aggregator!.Services.GetRequiredService<AggregatorTelemetry>().Rounds().Single(r => r.Round == round);
            Assert.Equal(pooled.F1, shown.FederationF1!.Value, 12);

            // ... beside the version it scored (the one the round started from), not the version the round produced: an
            // operator who picks the row with the best F1 exports that row's scored version. Before, the F1 of version
            // round - 1 stood next to "model version" round, a model no evaluation had scored.
            Match row = Regex.Match(console.Live(), $"<tr data-round=\"{round}\" data-outcome=\"completed\">.*?</tr>", RegexOptions.Singleline);
            Assert.True(row.Success, $"round {round} is not in the console's history");
            Assert.Contains($"<td class=\"scored\">{round - 1}</td><td class=\"f1\">{OperatorConsole.F1Cell(pooled.F1)}</td>", row.Value, StringComparison.Ordinal);

            // The audit records the same aggregate, for the model version the round started from.
            JsonElement line = AuditLine(audit, AuditEvents.FederatedEvaluation, round);
            Assert.Equal(round - 1, line.GetProperty("model_version").GetInt64());
            Assert.Equal(inSum, line.GetProperty("declared_scored").EnumerateArray().Select(e => e.GetString()!).Order(StringComparer.Ordinal));
            Assert.Equal(pooled.F1, line.GetProperty("f1").GetDouble(), 12);
            Assert.Equal(pooled.PerType["Drug"].F1, line.GetProperty("per_type").GetProperty("Drug").GetProperty("f1").GetDouble(), 12);
            Assert.Contains(pooled.F1.ToString("F3", CultureInfo.InvariantCulture), logged, StringComparison.Ordinal);

            foreach (EntityScore score in pooled.PerType.Values.Append(pooled.Overall))
            {
                published.UnionWith([score.F1, score.Precision, score.Recall]);
            }
        }

        // No site's own score: each site's F1, precision and recall (overall and per type) of either round is in neither
        // the log nor the audit (values that happen to equal a published aggregate to 3 decimals cannot be checked).
        var aggregates = published.Select(v => v.ToString("F3", CultureInfo.InvariantCulture)).ToHashSet(StringComparer.Ordinal);
        int checkedValues = 0, coincidences = 0;
        foreach (long round in new long[] { 1, 2 })
        {
            foreach (string site in Sites)
            {
                EvaluationResult own = TaggerEvaluator.Score(trainers[site].Gold, trainers[site].Predictions(round));
                foreach (EntityScore score in own.PerType.Where(t => Scored.Contains(t.Key)).Select(t => t.Value).Append(own.Overall))
                {
                    foreach (double value in new[] { score.F1, score.Precision, score.Recall })
                    {
                        string shown = value.ToString("F3", CultureInfo.InvariantCulture);
                        string exact = value.ToString("R", CultureInfo.InvariantCulture);
                        if (exact.Length >= 8 && !published.Contains(value))
                        {
                            Assert.DoesNotContain(exact, audit, StringComparison.Ordinal); // the audit writes full precision
                        }

                        if (aggregates.Contains(shown))
                        {
                            coincidences++;
                            continue;
                        }

                        // As a number of its own (not inside e.g. a request time "60.7911ms").
                        Assert.DoesNotMatch($"(?<![0-9.]){Regex.Escape(shown)}(?![0-9])", logged);
                        checkedValues++;
                    }
                }
            }
        }

        Assert.True(checkedValues >= 60 && coincidences <= 12, $"{checkedValues} site scores checked, {coincidences} equal to a published aggregate");
    }

    [Fact]
    public async Task Round_EvaluationSwitchedOff_AnnouncesNoSlotsAndPublishesNoScore()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-c"], new Dictionary<string, string>
        {
            ["FederatedEvaluation"] = "false",
        });
        await fed.StartAggregatorAsync();
        var completed = new ConcurrentBag<RoundProgress>();
        fed.Coordinator.Progress += (_, p) =>
        {
            if (p.Stage == "completed")
            {
                completed.Add(p);
            }
        };
        var trainers = new List<ScoringTrainer>();
        foreach ((string site, int i) in new[] { "site-a", "site-b", "site-c" }.Select((s, i) => (s, i)))
        {
            var trainer = new ScoringTrainer(new FakeTrainer(site, TestFederation.Parameters, 100), Dev(i), 0.1, i);
            trainers.Add(trainer);
            fed.StartAgent(site, 100, trainer: trainer);
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(120));

        RoundProgress done = Assert.Single(completed);
        Assert.Null(done.Evaluation);
        Assert.All(fed.Inputs.Values, input => Assert.Equal(TestFederation.Parameters + 1, input.Length));
        Assert.All(trainers, t => Assert.Equal(0, t.LastCap));
        string audit = await File.ReadAllTextAsync(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName));
        Assert.DoesNotContain(AuditEvents.FederatedEvaluation, audit, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static EntityCounts Counts(EntityScore s) => new(s.TruePositives, s.Predicted - s.TruePositives, s.Gold - s.TruePositives);

    private static JsonElement AuditLine(string audit, string type, long round)
    {
        foreach (string text in audit.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using JsonDocument doc = JsonDocument.Parse(text);
            JsonElement root = doc.RootElement;
            if (root.GetProperty("type").GetString() == type && root.GetProperty("fields").GetProperty("round").GetInt64() == round)
            {
                return root.GetProperty("fields").Clone();
            }
        }

        throw new Xunit.Sdk.XunitException($"no {type} line for round {round}");
    }

    /// <summary>A site's gold dev sentences: Disease, Drug and Gene mentions (Gene has no slots of its own: it counts only overall).</summary>
    private static List<Sentence> Dev(int site)
    {
        var rng = new Random(1000 + site);
        string[] types = ["Disease", "Drug", "Gene"];
        var sentences = new List<Sentence>();
        for (int s = 0; s < 25 + (10 * site); s++)
        {
            var tokens = new List<string>();
            var tags = new List<string>();
            while (tokens.Count < 12)
            {
                if (rng.NextDouble() < 0.3)
                {
                    string type = types[rng.Next(types.Length)];
                    int length = 1 + rng.Next(3);
                    for (int k = 0; k < length; k++)
                    {
                        tokens.Add("w" + tokens.Count.ToString(CultureInfo.InvariantCulture));
                        tags.Add((k == 0 ? "B-" : "I-") + type);
                    }
                }
                else
                {
                    tokens.Add("w" + tokens.Count.ToString(CultureInfo.InvariantCulture));
                    tags.Add("O");
                }
            }

            sentences.Add(new Sentence(tokens, tags));
        }

        return sentences;
    }

    /// <summary>
    /// The fake trainer plus a dev set and a "model" whose predictions are the gold tags with a site- and round-specific
    /// error rate: the counts it reports are the project's conlleval counts of those predictions.
    /// </summary>
    private sealed class ScoringTrainer(FakeTrainer inner, List<Sentence> gold, double errorRate, int seed) : ILocalTrainer
    {
        private static readonly string[] Noise = ["O", "B-Disease", "I-Disease", "B-Drug", "I-Drug", "B-Gene"];

        public IReadOnlyList<Sentence> Gold => gold;

        public int LastCap { get; private set; } = -1;

        public string ModelSpecSha256 => inner.ModelSpecSha256;

        public int ParameterCount => inner.ParameterCount;

        public long ExampleCount => inner.ExampleCount;

        public long ExpectedSteps(LocalTrainingPlan plan) => inner.ExpectedSteps(plan);

        public IReadOnlyList<IReadOnlyList<string>> Predictions(long round)
        {
            var rng = new Random((seed * 7919) + (int)round);
            double rate = errorRate / round;
            return [.. gold.Select(s => (IReadOnlyList<string>)[.. s.Tags.Select(t => rng.NextDouble() < rate ? Noise[rng.Next(Noise.Length)] : t)])];
        }

        public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
        {
            LastCap = plan.EvaluationCountCap;
            LocalUpdate update = inner.Train(globalModel, plan, cancellationToken);
            return plan.EvaluationCountCap > 0
                ? update with { GlobalDevCounts = DevEvaluation.Counts(TaggerEvaluator.Score(gold, Predictions(plan.Round))) }
                : update;
        }
    }
}
