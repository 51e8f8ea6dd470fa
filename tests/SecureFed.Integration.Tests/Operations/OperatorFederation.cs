using System.Net.Http.Headers;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Operations;
using SecureFed.Agent;
using SecureFed.Cli.Demo;
using SecureFed.Federation;
using SecureFed.Protocol;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>
/// A real federation on 127.0.0.1 (aggregator over mTLS gRPC + three agents with a stand-in trainer) whose aggregator
/// has the admin listener on: what the operator tests drive.
/// </summary>
internal sealed class OperatorFederation : IAsyncDisposable
{
    public static readonly string[] Sites = ["site-de", "site-fr", "site-jp"];
    public const int Parameters = 2_000;

    private OperatorFederation(LocalFederation federation, string directory)
    {
        Federation = federation;
        Directory = directory;
        Admin = AggregatorHost.AdminAddress(federation.Aggregator) ?? throw new InvalidOperationException("the admin listener is not bound");
        Token = OperatorCredential.LoadToken(federation.Provisioned.OperatorTokenPath);
    }

    public LocalFederation Federation { get; }

    public string Directory { get; }

    /// <summary>The admin listener (console at /, metrics at /metrics).</summary>
    public Uri Admin { get; }

    /// <summary>The operator token provision wrote.</summary>
    public string Token { get; }

    public AggregatorTelemetry Telemetry => (AggregatorTelemetry)Federation.Aggregator.Services.GetService(typeof(AggregatorTelemetry))!;

    /// <summary>Provisions and starts the aggregator with its admin listener; agents start with <see cref="StartAgentsAsync"/>.</summary>
    public static async Task<OperatorFederation> StartAsync(string directory, int rounds, (string Site, long Round, ProtocolStage Stage)? drop, int stageTimeoutSeconds)
    {
        var options = new LocalFederationOptions
        {
            OutputDirectory = directory,
            Sites = Sites,
            Rounds = rounds,
            Aggregator = new Dictionary<string, string>
            {
                ["MinSites"] = "3",
                ["StageTimeoutSeconds"] = stageTimeoutSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["TrainingTimeoutSeconds"] = "30",
                ["WeightCap"] = "1000",
                ["EpsilonBudget"] = "1000",
                ["AdminListen"] = "http://127.0.0.1:0",
            },
            Agent = new Dictionary<string, string> { ["CallTimeoutSeconds"] = "10", ["SiteEpsilonBudget"] = "1000", ["EpsilonBudget"] = "10" },
            Drop = drop,
        };
        LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, new float[Parameters], FakeTrainer.SpecSha, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        return new OperatorFederation(federation, directory);
    }

    /// <summary>Starts the three agents; each trains for <paramref name="training"/> (so the page can see the stage).</summary>
    public Task StartAgentsAsync(TimeSpan training) => Federation.StartAgentsAsync(
        new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]),
        (site, _) => new SlowTrainer(new FakeTrainer(site, Parameters, 400), training),
        _ => { },
        CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

    /// <summary>
    /// An HTTP client for the admin listener, with the operator token or without any credential; from the loopback
    /// address <paramref name="from"/> when given (the listener counts wrong tokens per remote address). With
    /// <paramref name="cookies"/> it is a browser that keeps the session cookie and does not follow redirects.
    /// </summary>
    public HttpClient Client(string? token, System.Net.IPAddress? from = null, System.Net.CookieContainer? cookies = null)
    {
        var handler = new SocketsHttpHandler { AllowAutoRedirect = cookies is null, UseCookies = cookies is not null, CookieContainer = cookies ?? new System.Net.CookieContainer() };
        if (from is not null)
        {
            handler.ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                try
                {
                    socket.Bind(new System.Net.IPEndPoint(from, 0));
                    await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
                    return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        var client = new HttpClient(handler) { BaseAddress = Admin, Timeout = TimeSpan.FromSeconds(15) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return client;
    }

    public ValueTask DisposeAsync() => Federation.DisposeAsync();
}
