using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using SecureFed.Agent;
using SecureFed.Cli.Demo;
using SecureFed.Privacy;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>
/// The agent's own admin listener (<c>SecureFed:AdminListen</c>) over real HTTP, in a real federation on 127.0.0.1
/// (aggregator over mTLS gRPC, three agents each with a listener of its own): after a round, scraping one agent's
/// <c>/metrics</c> shows that agent's series, and only its own, with values that match its round and its privacy ledger.
/// The scraped site trains the real TorchSharp tagger (the throughput needs real training); the others use the
/// stand-in trainer with the same model shape.
/// </summary>
public sealed class AgentMetricsListenerTests : IDisposable
{
    private const string RealSite = "site-de";
    private const string Federation = "agent-metrics-test"; // other tests in this process run federations of their own
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private static readonly string[] Sites = ["site-de", "site-fr", "site-jp"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-agent-metrics-").FullName;

    [Fact]
    public async Task AgentMetrics_ScrapedAfterRound_ShowTheAgentsOwnSeriesWithPlausibleValues()
    {
        var spec = new Agent.ModelSpec(TaggerConfig.Tiny with { WordBuckets = 256, CharNgramBuckets = 256 }, ["Disease"]);
        float[] initial = TaggerLocalTrainer.InitialParameters(spec, seed: 1);
        SiteProfile profile = SyntheticClinicalCorpus.Profiles[0];
        using var real = new TaggerLocalTrainer(spec, SyntheticClinicalCorpus.Generate(profile, 60, 1), SyntheticClinicalCorpus.Generate(profile, 20, 2), "cpu", 0.003, 1);
        var options = new LocalFederationOptions
        {
            OutputDirectory = _dir,
            FederationName = Federation,
            Sites = Sites,
            Rounds = 2,
            Aggregator = new Dictionary<string, string>
            {
                ["MinSites"] = "3",
                ["StageTimeoutSeconds"] = "20",
                ["TrainingTimeoutSeconds"] = "90",
                ["WeightCap"] = "1000",
                ["EpsilonBudget"] = "1000",
                ["DpSgdSampleRate"] = "0.1",
            },
            Agent = new Dictionary<string, string>
            {
                ["CallTimeoutSeconds"] = "10",
                ["SiteEpsilonBudget"] = "1000",
                ["EpsilonBudget"] = "10",
                ["AdminListen"] = "http://127.0.0.1:0",
            },
        };

        // Round 1 runs; every agent is then held at the start of its round-2 training, still running, while the test reads it.
        var trainers = new Dictionary<string, HeldTrainer>();
        var firstRound = new TaskCompletionSource<AgentRoundReport>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, initial, spec.Sha256, CancellationToken.None).WaitAsync(Timeout);
        await federation.StartAgentsAsync(
            spec,
            (site, _) => trainers[site] = new HeldTrainer(site == RealSite ? real : new FakeTrainer(site, initial.Length, 60), spec.Sha256, holdFrom: 2),
            worker => worker.RoundFinished += (_, r) =>
            {
                if (r.Site == RealSite && r.Round == 1)
                {
                    firstRound.TrySetResult(r);
                }
            },
            CancellationToken.None).WaitAsync(Timeout);
        AgentRoundReport report = await firstRound.Task.WaitAsync(Timeout);
        Assert.True(report.Completed, report.Outcome);
        await trainers[RealSite].Held.WaitAsync(Timeout);

        // Each agent has a listener of its own, on a free loopback port, and none is the aggregator's.
        IHost host = federation.AgentHosts[Array.IndexOf(Sites, RealSite)];
        Uri[] listeners = [.. federation.AgentHosts.Select(h => AgentHost.AdminAddress(h) ?? throw new InvalidOperationException("an agent's admin listener is not bound"))];
        Assert.All(listeners, l => Assert.Equal("127.0.0.1", l.Host));
        Assert.Equal(listeners.Length, listeners.Select(l => l.Port).Append(federation.Address.Port).Distinct().Count() - 1);
        Uri admin = AgentHost.AdminAddress(host)!;
        using var client = new HttpClient { BaseAddress = admin, Timeout = TimeSpan.FromSeconds(15) };

        HttpResponseMessage response = await client.GetAsync("/metrics").WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        string scrape = await response.Content.ReadAsStringAsync().WaitAsync(Timeout);
        PrometheusText m = PrometheusText.Parse(scrape);

        // Training: one round trained, for a plausible time and throughput.
        Assert.Equal(1, m.Sum("securefed_agent_training_duration_seconds_count"));
        Assert.InRange(m.Sum("securefed_agent_training_duration_seconds_sum"), 1e-4, Timeout.TotalSeconds);
        Assert.Equal(1, m.Sum("securefed_agent_training_throughput_per_second_count"));
        Assert.InRange(m.Sum("securefed_agent_training_throughput_per_second_sum"), 1, 1e8);

        // Bytes sent: at least the masked input (4 bytes a parameter) and everything the round-1 report counted.
        Assert.InRange(m.Sum("securefed_agent_sent_bytes_total", "message=\"masked_input\""), 4.0 * initial.Length, 16.0 * initial.Length);
        Assert.InRange(m.Sum("securefed_agent_sent_bytes_total"), report.BytesSent, report.BytesSent + 64 * 1024);

        // Rounds: this agent's one completed round, not the three agents' (each host reads only its own meter).
        Assert.Equal(1, m.Sum("securefed_agent_rounds_total"));
        Assert.Equal(1, m.Sum("securefed_agent_rounds_total", "outcome=\"completed\""));

        // ε: what this site's own privacy ledger says now (DP-SGD is on), against the site's budgets.
        PrivacyLedger ledger = host.Services.GetRequiredService<AgentState>().Ledger;
        double recordSpent = m.Sum("securefed_agent_privacy_epsilon_spent", "guarantee=\"record\"");
        Assert.True(recordSpent > 0, $"record ε spent {recordSpent}");
        Assert.True(recordSpent >= report.RecordEpsilon - 1e-9, $"record ε spent {recordSpent} is under round 1's {report.RecordEpsilon}");
        Assert.Equal(ledger.Spent(Guarantee.Record, 1e-5).Epsilon, recordSpent, 9);
        Assert.Equal(ledger.Spent(Guarantee.Site, 1e-5).Epsilon, m.Sum("securefed_agent_privacy_epsilon_spent", "guarantee=\"site\""), 9);
        Assert.Equal(10, m.Sum("securefed_agent_privacy_epsilon_budget", "guarantee=\"record\""));
        Assert.Equal(1000, m.Sum("securefed_agent_privacy_epsilon_budget", "guarantee=\"site\""));

        // The standard instrumentation: the gRPC calls through the HTTP client, and the runtime.
        Assert.True(m.Sum("http_client_request_duration_seconds_count") > 0, "HTTP client instrumentation (the calls to the aggregator) is exported");
        Assert.Contains(m.Samples, s => s.Name.StartsWith("dotnet_", StringComparison.Ordinal));

        // The listener serves only GET /metrics, only to a loopback name.
        using var rebound = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        rebound.Headers.Host = "attacker.example";
        Assert.Equal(HttpStatusCode.BadRequest, (await client.SendAsync(rebound).WaitAsync(Timeout)).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await client.PostAsync("/metrics", null).WaitAsync(Timeout)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/").WaitAsync(Timeout)).StatusCode);
        using var localhost = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        localhost.Headers.Host = "localhost:" + admin.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(localhost).WaitAsync(Timeout)).StatusCode);
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
