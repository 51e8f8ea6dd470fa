using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Federation;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A federation on 127.0.0.1 under the test's control: provisioning (with optional revocations in the aggregator's
/// manifest copy), an aggregator that can be stopped and restarted on the same port and data directory, and agents run
/// as bare <see cref="AgentRunner"/>s so a fault-injecting HTTP handler can sit between them and the aggregator.
/// </summary>
internal sealed class TestFederation : IAsyncDisposable
{
    public const string FederationName = "reliability";
    public const int Parameters = 2_000;

    private readonly Dictionary<string, string> _aggregatorSettings;
    private readonly List<(CancellationTokenSource Cts, Task Task, AgentState State)> _agents = [];
    private readonly float[] _initial = [.. Enumerable.Range(0, Parameters).Select(i => (float)Math.Cos(i) * 0.1f)];

    private TestFederation(string directory, ProvisionResult provisioned, int port, Dictionary<string, string> aggregatorSettings)
    {
        Directory = directory;
        Provisioned = provisioned;
        Port = port;
        _aggregatorSettings = aggregatorSettings;
    }

    public string Directory { get; }

    public ProvisionResult Provisioned { get; }

    public int Port { get; }

    public Uri Address => new($"https://127.0.0.1:{Port}");

    public WebApplication? Aggregator { get; private set; }

    public RoundCoordinator Coordinator => Aggregator!.Services.GetRequiredService<RoundCoordinator>();

    public AggregatorState State => Aggregator!.Services.GetRequiredService<AggregatorState>();

    public string AggregatorDataDirectory => Path.Combine(Directory, "aggregator-data");

    public ConcurrentBag<AgentRoundReport> Reports { get; } = [];

    public ConcurrentDictionary<(string Site, long Round), uint[]> Inputs { get; } = new();

    public float[] InitialModel => _initial;

    public string AgentDataDirectory(string site) => Path.Combine(Directory, "agents", site);

    /// <summary>The federated-evaluation layout an announcement carries (bound into the round digest), or null.</summary>
    public static Protocol.EvaluationLayout? Layout(Wire.V1.RoundAnnouncement a) =>
        a.Evaluation is null ? null : Protocol.EvaluationLayout.Create(a.Evaluation.EntityTypes, (int)a.Evaluation.CountCap);

    /// <summary>
    /// The round parameters an honest agent reads from <paramref name="a"/>: the cohort, t, the graph, the vector, the
    /// evaluation layout and the DP-SGD fields bound into the digest (step cap, noise shares, layer scales), so that a
    /// hand-driven site signs the transcript the aggregator checks.
    /// </summary>
    public static Protocol.RoundParameters RoundParametersOf(Wire.V1.RoundAnnouncement a) =>
        new(a.Header.FederationId, (long)a.Header.Round, a.Header.SessionId,
            [.. a.Participants.Select(p => new Protocol.Participant((int)p.Index, p.Name, p.IdentityPublicKey.ToByteArray()))],
            (int)a.Threshold, (int)a.GraphDegree, (int)a.VectorLength, (int)a.BitWidth, Layout(a), (int)a.DpSgd.MaxSteps, (int)a.DpSgd.NoiseShares, a.DpSgd.LayerScales);

    /// <summary>Provisions <paramref name="sites"/>; revokes <paramref name="revoked"/> in the aggregator's manifest copy.</summary>
    public static TestFederation Provision(string directory, IReadOnlyList<string> sites, IReadOnlyDictionary<string, string>? aggregator = null, params string[] revoked)
    {
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(directory, "federation"), FederationName, sites, "127.0.0.1"));
        if (revoked.Length > 0)
        {
            string manifestPath = Path.Combine(provisioned.AggregatorKitDirectory, KitFiles.Manifest);
            FederationManifest manifest = FederationManifest.Load(manifestPath);
            foreach (string site in revoked)
            {
                manifest = manifest.WithRevoked(site);
            }

            manifest.Save(manifestPath);
        }

        var settings = new Dictionary<string, string>
        {
            ["Rounds"] = "1",
            ["MinSites"] = sites.Count.ToString(CultureInfo.InvariantCulture),
            ["StageTimeoutSeconds"] = "3",
            ["TrainingTimeoutSeconds"] = "20",
            ["JoinGraceSeconds"] = "1",
            ["WeightCap"] = "1000",
            ["SiteNoiseMultiplier"] = "0.5",
            ["L2Clip"] = "10",
            ["EpsilonBudget"] = "1000",
        };
        foreach ((string key, string value) in aggregator ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        return new TestFederation(directory, provisioned, SecureFed.Cluster.Bench.LoopbackPorts.Next(), settings);
    }

    /// <summary>Changes an aggregator setting (key without the "SecureFed:" prefix) for the next <see cref="StartAggregatorAsync"/>.</summary>
    public void SetAggregatorSetting(string key, string value) => _aggregatorSettings[key] = value;

    /// <summary>Builds and starts the aggregator (again, after a stop: same port, same data directory).</summary>
    public async Task StartAggregatorAsync(string? dataDirectory = null, ILoggerProvider? logs = null, LogLevel minimumLevel = LogLevel.Warning)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = FederationName,
            ["SecureFed:Listen"] = Address.ToString(),
            ["SecureFed:KitDirectory"] = Provisioned.AggregatorKitDirectory,
            ["SecureFed:DataDirectory"] = dataDirectory ?? AggregatorDataDirectory,
            ["SecureFed:ModelSpecSha256"] = FakeTrainer.SpecSha,
        };
        foreach ((string key, string value) in _aggregatorSettings)
        {
            settings["SecureFed:" + key] = value;
        }

        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        WebApplication app = AggregatorHost.Build(configuration, _initial, logging =>
        {
            logging.SetMinimumLevel(minimumLevel);
            if (logs is not null)
            {
                logging.AddProvider(logs);
            }
        });
        Aggregator = app; // before the start: a host whose coordinator fails at once cancels its own start, and the test reads the failure
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Stops the aggregator as a crash would leave it to the next start (the data directory stays).</summary>
    public async Task StopAggregatorAsync()
    {
        if (Aggregator is { } app)
        {
            Aggregator = null;
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            {
                await app.StopAsync(stop.Token).WaitAsync(TimeSpan.FromSeconds(20));
            }

            await app.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        }
    }

    /// <summary>Starts an honest agent (FakeTrainer) for <paramref name="site"/>; <paramref name="wrap"/> may wrap its HTTP handler; <paramref name="clientTime"/> is its client's clock (retry pauses, circuit breaker).</summary>
    /// <returns>The agent's run (it faults with what stopped it) and the source that stops it (Ctrl-C).</returns>
    public (Task Run, CancellationTokenSource Stop) StartAgent(string site, long examples, DropoutHook? dropout = null, Func<HttpMessageHandler, HttpMessageHandler>? wrap = null, int maxRetries = 4, Crypto.IRandomSource? updateRandom = null, ILocalTrainer? trainer = null, Action<AgentOptions>? configure = null, Action<AgentRunner>? configureRunner = null, Microsoft.Extensions.Logging.ILogger? logger = null, Uri? aggregatorAddress = null, TimeProvider? clientTime = null)
    {
        Uri address = aggregatorAddress ?? Address;
        var options = new AgentOptions
        {
            Site = site,
            Aggregator = address.ToString(),
            KitDirectory = Provisioned.SiteKitDirectories[site],
            DataDirectory = AgentDataDirectory(site),
            CallTimeoutSeconds = 10,
            SiteEpsilonBudget = 1000,
            EpsilonBudget = 1000,
            MaxRetries = maxRetries,
        };
        configure?.Invoke(options);
        AgentState state = AgentState.Open(options);
        HttpMessageHandler handler = SiteHandler(state.Kit);
        if (wrap is not null)
        {
            handler = wrap(handler);
        }

        var client = new AggregatorClient(address, state.Kit, TimeSpan.FromSeconds(options.CallTimeoutSeconds), options.MaxRetries, clientTime, handler: handler);
        var runner = new AgentRunner(options, state.Kit, client, trainer ?? new FakeTrainer(site, Parameters, examples), state.Ledger, state.Audit, logger ?? NullLogger.Instance)
        {
            Dropout = dropout,
            InputCaptured = (round, input) => Inputs[(site, round)] = input,
        };
        if (updateRandom is not null)
        {
            runner.UpdateRandom = updateRandom;
        }

        configureRunner?.Invoke(runner);
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
        _agents.Add((cts, task, state));
        return (task, cts);
    }

    /// <summary>Stops every agent and releases its state (audit log lock, ledger).</summary>
    public async Task StopAgentsAsync()
    {
        foreach ((CancellationTokenSource cts, Task task, AgentState state) in _agents)
        {
            await cts.CancelAsync();
            try
            {
                await task.WaitAsync(TimeSpan.FromSeconds(20));
            }
            catch (Exception ex) when (ex is OperationCanceledException or Grpc.Core.RpcException or HttpRequestException or AggregatorTrustException or AggregatorRefusedSiteException)
            {
                // an agent stopped mid-call
            }

            state.Dispose();
            cts.Dispose();
        }

        _agents.Clear();
    }

    /// <summary>Waits until the coordinator has run its rounds and the agents saw the end.</summary>
    public async Task WaitFinishedAsync(TimeSpan timeout)
    {
        await Coordinator.Finished.WaitAsync(timeout);
        await Task.WhenAll(_agents.Select(a => a.Task)).WaitAsync(timeout);
    }

    /// <summary>The mTLS handler a site uses (its kit certificate; trusts the manifest's aggregator).</summary>
    public static SocketsHttpHandler SiteHandler(PartyKit kit) => new()
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            ClientCertificates = [kit.TlsCertificate],
            RemoteCertificateValidationCallback = PeerTrust.AggregatorValidationCallback(kit.Manifest),
        },
        ConnectTimeout = TimeSpan.FromSeconds(5),
    };

    /// <summary>A raw channel presenting <paramref name="certificate"/> (or none), trusting any server certificate; disposing it closes its connections.</summary>
    public GrpcChannel RawChannel(X509Certificate2? certificate, int maxSendBytes = 16 * 1024 * 1024)
    {
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = certificate is null ? null : [certificate],
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            },
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };
        // Disposing the channel closes its connections (the aggregator bounds each site's open connections: MaxConnectionsPerSite).
        return GrpcChannel.ForAddress(Address, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true, MaxSendMessageSize = maxSendBytes, MaxReceiveMessageSize = 16 * 1024 * 1024 });
    }

    public async ValueTask DisposeAsync()
    {
        await StopAgentsAsync();
        await StopAggregatorAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
