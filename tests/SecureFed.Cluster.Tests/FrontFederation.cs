using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Security;
using Microsoft.Extensions.Logging.Abstractions;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Crypto;
using SecureFed.Federation;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A provisioned federation for the gRPC front tests: the aggregator's settings (shared by the single-process
/// aggregator and the coordinator silo), an initial model file, and in-process agents with deterministic updates and a
/// seeded randomness for stochastic rounding and noise.
/// </summary>
internal sealed class FrontFederation : IAsyncDisposable
{
    public const int Parameters = 3_000; // with the weight and evaluation words: 3 slices of 1 024 words
    private readonly List<(CancellationTokenSource Cts, Task Task, AgentState State, DeterministicRandomSource Random)> _agents = [];

    public FrontFederation(string directory, string federation, IReadOnlyList<string> sites)
    {
        Directory = directory;
        Federation = federation;
        Sites = sites;
        Provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(directory, "federation"), federation, sites, "127.0.0.1"));
        InitialModel = [.. Enumerable.Range(0, Parameters).Select(i => (float)Math.Cos(i) * 0.1f)];
        InitialModelPath = Path.Combine(directory, "initial.model");
        File.WriteAllBytes(InitialModelPath, ModelState.ToBytes(InitialModel));
    }

    /// <summary>The digest of the default model spec, which 'securefed aggregator' announces.</summary>
    public static string SpecSha => ModelSpec.Clinical(tiny: false).Sha256;

    public string Directory { get; }

    public string Federation { get; }

    public IReadOnlyList<string> Sites { get; }

    public ProvisionResult Provisioned { get; }

    public float[] InitialModel { get; }

    public string InitialModelPath { get; }

    public ConcurrentDictionary<(string Site, long Round), uint[]> Inputs { get; } = new();

    public ConcurrentBag<AgentRoundReport> Reports { get; } = [];

    /// <summary>Each site's dev counts for federated evaluation (null, the default: the sites do not score).</summary>
    public Func<string, EvaluationCounts?>? DevCounts { get; set; }

    public List<string> AgentAuditDirectories { get; } = [];

    /// <summary>The aggregator's <c>SecureFed</c> settings (both runs use the same; the CLI adds the model-spec digest itself).</summary>
    public Dictionary<string, object> AggregatorSettings(string dataDirectory, int port, int rounds) => new()
    {
        ["Listen"] = $"https://127.0.0.1:{port}",
        ["KitDirectory"] = Provisioned.AggregatorKitDirectory,
        ["DataDirectory"] = dataDirectory,
        ["InitialModel"] = InitialModelPath,
        ["ModelParameterCount"] = "0", // a synthetic model of Parameters, not the spec's size: unchecked
        ["Rounds"] = rounds.ToString(CultureInfo.InvariantCulture),
        ["MinSites"] = Sites.Count.ToString(CultureInfo.InvariantCulture),
        ["StageTimeoutSeconds"] = "10",
        ["TrainingTimeoutSeconds"] = "60",
        ["JoinGraceSeconds"] = "1",
        ["WeightCap"] = "1000",
        ["SiteNoiseMultiplier"] = "0.5",
        ["L2Clip"] = "10",
        ["EpsilonBudget"] = "1000",
        ["EvaluationEntityTypes"] = ModelSpec.Clinical(tiny: false).EntityTypes.ToArray(),
    };

    /// <summary>The same settings flattened for an in-memory configuration (section <c>SecureFed</c>).</summary>
    public static Dictionary<string, string?> Flatten(Dictionary<string, object> settings)
    {
        var flat = new Dictionary<string, string?>();
        foreach ((string key, object value) in settings)
        {
            if (value is string[] values)
            {
                for (int i = 0; i < values.Length; i++)
                {
                    flat[$"SecureFed:{key}:{i}"] = values[i];
                }
            }
            else
            {
                flat["SecureFed:" + key] = Convert.ToString(value, CultureInfo.InvariantCulture);
            }
        }

        return flat;
    }

    /// <summary>Starts every site's agent against <paramref name="aggregator"/>, each with its seeded update randomness (seed 100 + i).</summary>
    public void StartAgents(Uri aggregator, string run, Func<HttpMessageHandler, HttpMessageHandler>? wrap = null, Func<string, AgentSetup?>? setup = null)
    {
        for (int i = 0; i < Sites.Count; i++)
        {
            string site = Sites[i];
            AgentSetup? custom = setup?.Invoke(site);
            var options = new AgentOptions
            {
                Site = site,
                Aggregator = custom is null ? aggregator.ToString() : string.Join(",", custom.Endpoints.Select(e => e.ToString())),
                KitDirectory = Provisioned.SiteKitDirectories[site],
                DataDirectory = Path.Combine(Directory, run, site),
                CallTimeoutSeconds = 15,
                SiteEpsilonBudget = 1000,
                EpsilonBudget = 1000,
                MaxRetries = 4,
            };
            AgentState state = AgentState.Open(options);
            AgentAuditDirectories.Add(AgentState.AuditDirectory(options.DataDirectory));
            HttpMessageHandler handler = new SocketsHttpHandler
            {
                SslOptions = new SslClientAuthenticationOptions
                {
                    ClientCertificates = [state.Kit.TlsCertificate],
                    RemoteCertificateValidationCallback = PeerTrust.AggregatorValidationCallback(state.Kit.Manifest),
                },
                ConnectTimeout = TimeSpan.FromSeconds(5),
            };
            if (wrap is not null)
            {
                handler = wrap(handler);
            }

            var client = new AggregatorClient(options.AggregatorEndpoints(), state.Kit, TimeSpan.FromSeconds(options.CallTimeoutSeconds), options.MaxRetries, handler: handler);
            var random = new DeterministicRandomSource(100 + i);
            var trainer = new SpecTrainer(new FakeTrainer(site, Parameters, 300 + (200 * i)), SpecSha, DevCounts?.Invoke(site));
            var runner = new AgentRunner(options, state.Kit, client, trainer, state.Ledger, state.Audit, NullLogger.Instance)
            {
                InputCaptured = (round, input) => Inputs[(site, round)] = input,
                UpdateRandom = random,
                SpeaksProtocolVersion = custom?.SpeaksProtocolVersion ?? AgentRunner.SliceUploadVersion,
            };
            runner.RoundFinished += (_, report) => Reports.Add(report);
            var cts = new CancellationTokenSource();
            Task task = Task.Run(async () =>
            {
                try
                {
                    await runner.RunAsync(cts.Token);
                }
                finally
                {
                    client.Dispose();
                }
            });
            _agents.Add((cts, task, state, random));
        }
    }

    /// <summary>Waits until every agent has heard that the federation finished.</summary>
    public Task AgentsFinishedAsync(TimeSpan timeout) => Task.WhenAll(_agents.Select(a => a.Task)).WaitAsync(timeout);

    /// <summary>
    /// Stops every agent and releases its state (audit log lock, ledger). Every agent is cancelled first and every one is
    /// released before an agent that did not stop within 20 s is reported (a <see cref="TimeoutException"/> naming it):
    /// before, the first such agent threw at once and left the others running with their state held.
    /// </summary>
    public async Task StopAgentsAsync()
    {
        foreach ((CancellationTokenSource cts, _, _, _) in _agents)
        {
            await cts.CancelAsync();
        }

        var hung = new List<string>();
        foreach ((CancellationTokenSource cts, Task task, AgentState state, DeterministicRandomSource random) in _agents)
        {
            try
            {
                await task.WaitAsync(TimeSpan.FromSeconds(20));
            }
            catch (Exception ex) when (ex is OperationCanceledException or Grpc.Core.RpcException or HttpRequestException)
            {
                // an agent stopped mid-call
            }
            catch (TimeoutException)
            {
                hung.Add(state.Kit.Name);
            }

            state.Dispose();
            cts.Dispose();
            random.Dispose();
        }

        _agents.Clear();
        if (hung.Count > 0)
        {
            throw new TimeoutException($"agents {string.Join(", ", hung)} did not stop within 20 s of being cancelled");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAgentsAsync();
    }
}
