using System.Collections.Concurrent;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.Extensions.DependencyInjection;
using SecureFed.Agent;
using SecureFed.Cli.Demo;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>
/// <c>SecureFed:OtlpEndpoint</c> against a collector: an OTLP/gRPC receiver on 127.0.0.1 (<see cref="OtlpReceiver"/>)
/// given to the aggregator and to the three agents of a real federation (mTLS gRPC on 127.0.0.1). After a round, and
/// the hosts' shutdown (which flushes their exporters), the collector has each agent's meter, the aggregator's meter,
/// and the round's traces: the aggregator's round with a span per stage, each site's round with a span per stage, and
/// the aggregator's server spans of a site's calls inside that site's trace.
/// </summary>
public sealed class OtlpExportTests : IDisposable
{
    private const string Federation = "otlp-export-test"; // other tests in this process run federations of their own
    private const int Parameters = 2_000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private static readonly string[] Sites = ["site-de", "site-fr", "site-jp"];
    private static readonly string[] AgentStages = ["announce", "training", "advertise_keys", "share_keys", "masked_input", "consistency", "unmasking"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-otlp-").FullName;

    [Fact]
    public async Task OtlpExport_RoundWithCollector_CollectorReceivesAgentAndAggregatorMetricsAndRoundTraces()
    {
        await using OtlpReceiver collector = await OtlpReceiver.StartAsync(CancellationToken.None).WaitAsync(Timeout);
        string endpoint = collector.Address.ToString();
        var options = new LocalFederationOptions
        {
            OutputDirectory = _dir,
            FederationName = Federation,
            Sites = Sites,
            Rounds = 1,
            Aggregator = new Dictionary<string, string>
            {
                ["MinSites"] = "3",
                ["StageTimeoutSeconds"] = "20",
                ["TrainingTimeoutSeconds"] = "60",
                ["WeightCap"] = "1000",
                ["EpsilonBudget"] = "1000",
                ["DpSgdSampleRate"] = "0.1",
                ["OtlpEndpoint"] = endpoint,
            },
            Agent = new Dictionary<string, string>
            {
                ["CallTimeoutSeconds"] = "10",
                ["SiteEpsilonBudget"] = "1000",
                ["EpsilonBudget"] = "10",
                ["OtlpEndpoint"] = endpoint,
            },
        };
        var reports = new ConcurrentDictionary<string, AgentRoundReport>();
        await using (LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, new float[Parameters], FakeTrainer.SpecSha, CancellationToken.None).WaitAsync(Timeout))
        {
            await federation.StartAgentsAsync(
                new Agent.ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]),
                (site, _) => new FakeTrainer(site, Parameters, 400),
                worker => worker.RoundFinished += (_, r) => reports[r.Site] = r,
                CancellationToken.None).WaitAsync(Timeout);
            await federation.WaitAsync(Timeout, CancellationToken.None);

            // Without SecureFed:AdminListen an agent listens on nothing: no server in its host at all.
            Assert.All(federation.AgentHosts, h =>
            {
                Assert.Null(AgentHost.AdminAddress(h));
                Assert.Null(h.Services.GetService<IServer>());
            });
        }

        // Disposing the hosts flushed their exporters: everything below has arrived.
        Assert.Empty(collector.Rejected);
        Assert.Equal(Sites.Length, reports.Count);
        Assert.All(reports.Values, r => Assert.True(r.Completed, r.Outcome));

        // Each agent's own meter, sent by that agent (its resource names the site).
        foreach (string site in Sites)
        {
            var mine = collector.Metrics.Where(m => m.Service == "securefed-agent" && m.Resource.GetValueOrDefault("service.instance.id") == site && m.Scope == AgentTelemetry.Name).ToList();
            foreach (string name in new[] { "securefed.agent.training.duration", "securefed.agent.sent", "securefed.agent.rounds", "securefed.agent.privacy.epsilon_spent", "securefed.agent.privacy.epsilon_budget" })
            {
                Assert.True(mine.Any(m => m.Name == name), $"{site} exported no {name}; it exported {string.Join(", ", mine.Select(m => m.Name).Distinct())}");
            }

            OtlpPoint rounds = Assert.Single(Last(mine, "securefed.agent.rounds").Points);
            Assert.Equal("completed", rounds.Attributes["outcome"]);
            Assert.Equal(1, rounds.Value);
            Assert.Equal(1, Assert.Single(Last(mine, "securefed.agent.training.duration").Points).Count);
            Assert.Equal(reports[site].BytesSent, Last(mine, "securefed.agent.sent").Points.Sum(p => p.Value));
            double recordSpent = Last(mine, "securefed.agent.privacy.epsilon_spent").Points.Single(p => p.Attributes["guarantee"] == "record").Value;
            Assert.True(recordSpent > 0, $"{site}: record ε spent {recordSpent}");
            Assert.Equal(reports[site].RecordEpsilon, recordSpent, 9);
            Assert.Equal(10, Last(mine, "securefed.agent.privacy.epsilon_budget").Points.Single(p => p.Attributes["guarantee"] == "record").Value);
        }

        // The aggregator's meter (federation level only).
        var aggregator = collector.Metrics.Where(m => m.Service == "securefed-aggregator" && m.Scope == Aggregator.Operations.AggregatorTelemetry.Name).ToList();
        Assert.Equal(1, Last(aggregator, "securefed.aggregator.rounds.completed").Points.Sum(p => p.Value));
        Assert.Equal(1, Last(aggregator, "securefed.aggregator.model.version").Points.Single().Value);
        Assert.Equal(3, Last(aggregator, "securefed.aggregator.stage.sites_delivered").Points.Single(p => p.Attributes["stage"] == "masked_input").Value);
        Assert.True(Last(aggregator, "securefed.aggregator.privacy.epsilon_spent").Points.Single().Value > 0);
        Assert.Contains(aggregator, m => m.Name == "securefed.aggregator.stage.duration");
        Assert.Contains(collector.Metrics, m => m.Service == "securefed-aggregator" && m.Name == "http.server.request.duration");

        // The aggregator's round: one trace, a span per stage under the round's span.
        OtlpSpan round = Assert.Single(collector.Spans.DistinctBy(s => s.SpanId), s => s.Service == "securefed-aggregator" && s.Name == "securefed.round"
            && s.Attributes.GetValueOrDefault("securefed.federation") == Federation);
        Assert.Equal("completed", round.Attributes["securefed.outcome"]);
        Assert.Equal("1", round.Attributes["securefed.round"]);
        Assert.Empty(round.ParentSpanId);
        var stages = collector.Spans.Where(s => s.Service == "securefed-aggregator" && s.TraceId == round.TraceId && s.Name.StartsWith("securefed.stage ", StringComparison.Ordinal)).DistinctBy(s => s.SpanId).ToList();
        Assert.All(stages, s => Assert.Equal(round.SpanId, s.ParentSpanId));
        foreach (string stage in new[] { "advertise_keys", "share_keys", "masked_input", "consistency", "unmasking" })
        {
            Assert.Contains(stages, s => s.Name == "securefed.stage " + stage);
        }

        // Each site's round: a trace of its own with a span per stage, and the aggregator's server spans of its calls in it.
        foreach (string site in Sites)
        {
            // (Exported by that site's own agent. Agents that share a process, as here, also export each other's spans
            // under their own resource: the activity source is process-wide.)
            OtlpSpan siteRound = Assert.Single(collector.Spans, s => s.Service == "securefed-agent" && s.Resource.GetValueOrDefault("service.instance.id") == site
                && s.Name == "securefed.agent.round" && s.Attributes.GetValueOrDefault("securefed.federation") == Federation && s.Attributes.GetValueOrDefault("securefed.site") == site);
            Assert.Equal("1", siteRound.Attributes["securefed.round"]);
            var siteStages = collector.Spans.Where(s => s.TraceId == siteRound.TraceId && s.Service == "securefed-agent" && s.Name.StartsWith("securefed.agent.stage ", StringComparison.Ordinal)).DistinctBy(s => s.SpanId).ToList();
            Assert.Equal(AgentStages.Order(StringComparer.Ordinal), siteStages.Select(s => s.Name["securefed.agent.stage ".Length..]).Order(StringComparer.Ordinal));
            Assert.All(siteStages, s => Assert.Equal(siteRound.SpanId, s.ParentSpanId));
            var calls = collector.Spans.Where(s => s.TraceId == siteRound.TraceId && s.Service == "securefed-aggregator").ToList();
            Assert.Contains(calls, s => s.Attributes.GetValueOrDefault("grpc.method") == "/securefed.v1.Aggregation/UploadMaskedInput");
            Assert.Contains(calls, s => s.Attributes.GetValueOrDefault("grpc.method") == "/securefed.v1.Aggregation/Unmask");
            Assert.NotEqual(round.TraceId, siteRound.TraceId);
        }
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

    /// <summary>The last export of a metric (cumulative temporality: the latest values).</summary>
    private static OtlpMetric Last(IEnumerable<OtlpMetric> metrics, string name)
        => metrics.LastOrDefault(m => m.Name == name) ?? throw new Xunit.Sdk.XunitException($"no {name} was exported");
}
