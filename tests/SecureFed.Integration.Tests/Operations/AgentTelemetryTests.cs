using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using SecureFed.Aggregator.Operations;
using SecureFed.Agent;
using SecureFed.Cli.Demo;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>
/// The agent's own telemetry over a real round (aggregator and three agents on 127.0.0.1, mTLS gRPC): its meter's
/// measurements are plausible and match its privacy ledger, and its calls carry the round's trace context so the
/// aggregator's server spans join the site's trace. One site trains the real TorchSharp tagger (the throughput needs
/// real training); the other two use the stand-in trainer with the same model shape.
/// </summary>
public sealed class AgentTelemetryTests : IDisposable
{
    private const string RealSite = "site-de";
    private const string Federation = "agent-telemetry-test"; // other tests in this process run federations of their own
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private static readonly string[] Sites = ["site-de", "site-fr", "site-jp"];
    private static readonly (string Stage, string[] Methods)[] StageCalls =
    [
        ("announce", ["DownloadModel"]),
        ("advertise_keys", ["AdvertiseKeys", "AwaitAdvertisements"]),
        ("share_keys", ["ShareKeys", "AwaitShares"]),
        ("masked_input", ["UploadMaskedInput", "AwaitSurvivors"]),
        ("consistency", ["SignSurvivors", "AwaitUnmaskRequest"]),
        ("unmasking", ["Unmask", "AwaitRoundOutcome"]),
    ];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-agent-telemetry-").FullName;

    [Fact]
    public async Task AgentRound_RealTraining_MeterAndTraceContextArePlausible()
    {
        var spec = new Agent.ModelSpec(TaggerConfig.Tiny with { WordBuckets = 256, CharNgramBuckets = 256 }, ["Disease"]);
        float[] initial = TaggerLocalTrainer.InitialParameters(spec, seed: 1);
        SiteProfile profile = SyntheticClinicalCorpus.Profiles[0];
        using var real = new TaggerLocalTrainer(spec, SyntheticClinicalCorpus.Generate(profile, 60, 1), SyntheticClinicalCorpus.Generate(profile, 20, 2), "cpu", 0.003, 1);

        var measurements = new ConcurrentQueue<(Meter Meter, string Name, double Value, KeyValuePair<string, object?>[] Tags)>();
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == AgentTelemetry.Name)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meters.SetMeasurementEventCallback<long>((i, v, tags, _) => measurements.Enqueue((i.Meter, i.Name, v, tags.ToArray())));
        meters.SetMeasurementEventCallback<double>((i, v, tags, _) => measurements.Enqueue((i.Meter, i.Name, v, tags.ToArray())));
        meters.Start();

        var spans = new ConcurrentQueue<Activity>();
        using var traces = new ActivityListener
        {
            ShouldListenTo = source => source.Name is AgentTelemetry.Name or AggregatorTelemetry.Name or "Microsoft.AspNetCore" or "System.Net.Http" or "Grpc.Net.Client",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(traces);

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
                ["TrainingTimeoutSeconds"] = "90",
                ["WeightCap"] = "1000",
                ["EpsilonBudget"] = "1000",
                ["DpSgdSampleRate"] = "0.1",
            },
            Agent = new Dictionary<string, string> { ["CallTimeoutSeconds"] = "10", ["SiteEpsilonBudget"] = "1000", ["EpsilonBudget"] = "10" },
        };
        var reports = new ConcurrentQueue<AgentRoundReport>();
        await using LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, initial, spec.Sha256, CancellationToken.None).WaitAsync(Timeout);
        await federation.StartAgentsAsync(
            spec,
            (site, _) => site == RealSite ? real : new ShapedTrainer(new FakeTrainer(site, initial.Length, 60), spec.Sha256),
            worker => worker.RoundFinished += (_, r) => reports.Enqueue(r),
            CancellationToken.None).WaitAsync(Timeout);
        await federation.WaitAsync(Timeout, CancellationToken.None);
        meters.RecordObservableInstruments();

        // Metrics of the site that trained for real, read on its own host's meter (the other agents' are separate).
        AgentRoundReport report = Assert.Single(reports, r => r.Site == RealSite);
        Assert.True(report.Completed, report.Outcome);
        Meter meter = federation.Workers.Single(w => w.SiteName == RealSite).Telemetry.Meter;
        var mine = measurements.Where(m => ReferenceEquals(m.Meter, meter)).ToList();
        double trainingSeconds = Assert.Single(mine, m => m.Name == "securefed.agent.training.duration").Value;
        Assert.InRange(trainingSeconds, 1e-4, Timeout.TotalSeconds);
        double tokensPerSecond = Assert.Single(mine, m => m.Name == "securefed.agent.training.throughput").Value;
        Assert.InRange(tokensPerSecond, 1, 1e8);
        var sent = mine.Where(m => m.Name == "securefed.agent.sent").ToList();
        Assert.True(report.BytesSent > 4L * initial.Length, $"bytes sent {report.BytesSent}");
        Assert.Equal((double)report.BytesSent, sent.Sum(m => m.Value));
        Assert.Contains(sent, m => Tag(m.Tags, "message") == "masked_input" && m.Value >= 4.0 * initial.Length);
        var round = Assert.Single(mine, m => m.Name == "securefed.agent.rounds");
        Assert.Equal("completed", Tag(round.Tags, "outcome"));
        Assert.True(report.RecordEpsilon > 0, "the round spent patient-level ε");
        Assert.Equal(report.RecordEpsilon, mine.Last(m => m.Name == "securefed.agent.privacy.epsilon_spent" && Tag(m.Tags, "guarantee") == "record").Value);
        Assert.Equal(report.SiteEpsilon, mine.Last(m => m.Name == "securefed.agent.privacy.epsilon_spent" && Tag(m.Tags, "guarantee") == "site").Value);
        Assert.Equal(10, mine.Last(m => m.Name == "securefed.agent.privacy.epsilon_budget" && Tag(m.Tags, "guarantee") == "record").Value);

        // Traces: the site's round is one trace with a span per stage, and the aggregator's server span of every call
        // the site made in a stage descends from that stage's span, through the client spans of the call (W3C
        // traceparent over gRPC).
        Activity roundSpan = Assert.Single(spans, a => a.Source.Name == AgentTelemetry.Name && a.OperationName == "securefed.agent.round"
            && (string?)a.GetTagItem("securefed.federation") == Federation && (string?)a.GetTagItem("securefed.site") == RealSite);
        Assert.Equal("completed", roundSpan.GetTagItem("securefed.outcome"));
        var server = spans.Where(a => a.Source.Name == "Microsoft.AspNetCore" && a.TraceId == roundSpan.TraceId).ToList();
        foreach ((string stage, string[] methods) in StageCalls)
        {
            Activity stageSpan = Assert.Single(spans, a => a.Source.Name == AgentTelemetry.Name && a.TraceId == roundSpan.TraceId && a.OperationName == "securefed.agent.stage " + stage);
            Assert.Equal(roundSpan.SpanId, stageSpan.ParentSpanId);
            foreach (string method in methods)
            {
                Activity call = Assert.Single(server, s => (string?)s.GetTagItem("grpc.method") == "/securefed.v1.Aggregation/" + method);
                Assert.Equal(ActivityKind.Server, call.Kind);
                Assert.NotEqual(stageSpan.SpanId, call.SpanId);
                Assert.InRange(call.StartTimeUtc, stageSpan.StartTimeUtc, stageSpan.StartTimeUtc + stageSpan.Duration);
                // The server span's end is not checked against the stage's: ASP.NET Core stops it after the response
                // is flushed, which may be after the client has read the response and closed the stage (CI saw 2 ms).
                Assert.Equal(stageSpan.SpanId, Ancestors(spans, call).Select(a => a.ParentSpanId).Last());
            }
        }

        // Only identifiers cross: no baggage reaches the aggregator, and none of its spans carries a site statistic.
        Assert.All(server, s => Assert.Empty(s.Baggage));
        foreach (Activity span in spans.Where(a => a.Source.Name is AggregatorTelemetry.Name or "Microsoft.AspNetCore"))
        {
            foreach (KeyValuePair<string, object?> tag in span.TagObjects)
            {
                foreach (string forbidden in new[] { "norm", "loss", "score", "f1", "accuracy", "epsilon", "tokens" })
                {
                    Assert.DoesNotContain(forbidden, tag.Key, StringComparison.OrdinalIgnoreCase);
                }
            }
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

    /// <summary>The client-side spans above a server span, up to the first that is not recorded here.</summary>
    private static List<Activity> Ancestors(IEnumerable<Activity> spans, Activity span)
    {
        var chain = new List<Activity> { span };
        var bySpan = spans.GroupBy(a => a.SpanId).ToDictionary(g => g.Key, g => g.First());
        while (bySpan.TryGetValue(chain[^1].ParentSpanId, out Activity? parent) && parent.Source.Name is "System.Net.Http" or "Grpc.Net.Client")
        {
            chain.Add(parent);
        }

        return chain;
    }

    private static string? Tag(KeyValuePair<string, object?>[] tags, string key) => tags.FirstOrDefault(t => t.Key == key).Value?.ToString();

    /// <summary>The stand-in trainer under the real model's specification (so its site accepts the round).</summary>
    private sealed class ShapedTrainer(FakeTrainer inner, string specSha256) : ILocalTrainer
    {
        public string ModelSpecSha256 => specSha256;

        public int ParameterCount => inner.ParameterCount;

        public long ExampleCount => inner.ExampleCount;

        public long ExpectedSteps(LocalTrainingPlan plan) => inner.ExpectedSteps(plan);

        public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken) => inner.Train(globalModel, plan, cancellationToken);
    }
}
