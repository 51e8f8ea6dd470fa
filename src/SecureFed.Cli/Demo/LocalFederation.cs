using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Federation;

namespace SecureFed.Cli.Demo;

/// <summary>
/// A whole federation on 127.0.0.1: provisions a CA and kits, starts a real aggregator (Kestrel, gRPC, mTLS, free
/// port) and one agent host per site, each with its own data directory. Used by <c>securefed demo</c> and by the
/// end-to-end tests.
/// </summary>
internal sealed class LocalFederation : IAsyncDisposable
{
    private readonly List<IHost> _agentHosts = [];
    private readonly List<FileLoggerProvider> _logFiles = [];

    private LocalFederation(
        LocalFederationOptions options, ProvisionResult provisioned, IReadOnlyDictionary<string, string> siteKits, WebApplication aggregator, Uri address, FileLoggerProvider? aggregatorLog)
    {
        if (aggregatorLog is not null)
        {
            _logFiles.Add(aggregatorLog);
        }

        Options = options;
        Provisioned = provisioned;
        SiteKitDirectories = siteKits;
        Aggregator = aggregator;
        Address = address;
        Coordinator = aggregator.Services.GetRequiredService<RoundCoordinator>();
        State = aggregator.Services.GetRequiredService<AggregatorState>();
    }

    public LocalFederationOptions Options { get; }

    public ProvisionResult Provisioned { get; }

    /// <summary>Each site's kit folder: the provisioned ones and <see cref="LocalFederationOptions.AddedSites"/>.</summary>
    public IReadOnlyDictionary<string, string> SiteKitDirectories { get; }

    public WebApplication Aggregator { get; }

    public Uri Address { get; }

    public RoundCoordinator Coordinator { get; }

    public AggregatorState State { get; }

    public List<AgentWorker> Workers { get; } = [];

    /// <summary>The agent hosts, in the order of <see cref="LocalFederationOptions.Sites"/> and then <see cref="LocalFederationOptions.AddedSites"/> (after <see cref="StartAgentsAsync"/>).</summary>
    public IReadOnlyList<IHost> AgentHosts => _agentHosts;

    public string AggregatorDataDirectory => Path.Combine(Options.OutputDirectory, "aggregator-data");

    public string AgentDataDirectory(string site) => Path.Combine(Options.OutputDirectory, "agents", site);

    /// <summary>Provisions and starts the aggregator (agents are added with <see cref="StartAgentsAsync"/>).</summary>
    public static async Task<LocalFederation> StartAggregatorAsync(LocalFederationOptions options, float[] initialModel, string modelSpecSha256, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        string kits = Path.Combine(options.OutputDirectory, "federation");
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(kits, options.FederationName, options.Sites, "127.0.0.1"));
        var siteKits = new Dictionary<string, string>(provisioned.SiteKitDirectories, StringComparer.Ordinal);
        foreach (string site in options.AddedSites)
        {
            AddSiteResult added = FederationProvisioner.AddSite(kits, site, TimeSpan.FromDays(30));
            if (added.DurabilityUnconfirmed is { } problem)
            {
                throw new IOException(problem); // the demo stops on a disk that failed a flush, as it did before add-site kept the site
            }

            siteKits[site] = added.KitDirectory;
        }

        if (options.AddedSites.Count > 0)
        {
            // add-site's steps 2 and 3: every other site's kit, then the aggregator's, gets the new manifest.
            foreach (string kit in siteKits.Values.Append(provisioned.AggregatorKitDirectory))
            {
                File.Copy(provisioned.ManifestPath, Path.Combine(kit, KitFiles.Manifest), overwrite: true);
            }
        }

        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = options.FederationName,
            ["SecureFed:Listen"] = "https://127.0.0.1:0",
            ["SecureFed:KitDirectory"] = provisioned.AggregatorKitDirectory,
            ["SecureFed:DataDirectory"] = Path.Combine(options.OutputDirectory, "aggregator-data"),
            ["SecureFed:Rounds"] = options.Rounds.ToString(CultureInfo.InvariantCulture),
            ["SecureFed:MinSites"] = Math.Min(options.Sites.Count, 2).ToString(CultureInfo.InvariantCulture),
            ["SecureFed:ModelSpecSha256"] = modelSpecSha256,
            ["SecureFed:JoinGraceSeconds"] = "1",
        };
        foreach ((string key, string value) in options.Aggregator)
        {
            settings["SecureFed:" + key] = value;
        }

        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        FileLoggerProvider? log = options.LogDirectory is { } logs ? new FileLoggerProvider(Path.Combine(logs, "aggregator.log")) : null;
        try
        {
            WebApplication app = AggregatorHost.Build(configuration, initialModel, logging => ConfigureLogging(logging, options, log));
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            return new LocalFederation(options, provisioned, siteKits, app, AggregatorHost.BoundAddress(app), log);
        }
        catch
        {
            log?.Dispose();
            throw;
        }
    }

    /// <summary>The log file of a host (aggregator or a site) when <see cref="LocalFederationOptions.LogDirectory"/> is set.</summary>
    public string? LogFile(string host) => Options.LogDirectory is { } dir ? Path.Combine(dir, host + ".log") : null;

    private static void ConfigureLogging(ILoggingBuilder logging, LocalFederationOptions options, FileLoggerProvider? file)
    {
        logging.SetMinimumLevel(options.LogLevel);
        if (file is not null)
        {
            logging.ClearProviders();
            logging.AddProvider(file);
            logging.AddFilter("Microsoft", LogLevel.Warning);
            logging.AddFilter("Grpc", LogLevel.Warning);
        }
    }

    /// <summary>Starts one agent host per site with trainers from <paramref name="trainerFactory"/>.</summary>
    public async Task StartAgentsAsync(Agent.ModelSpec spec, Func<string, AgentOptions, ILocalTrainer> trainerFactory, Action<AgentWorker>? configure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(trainerFactory);
        foreach (string site in Options.Sites.Concat(Options.AddedSites))
        {
            var settings = new Dictionary<string, string?>
            {
                ["SecureFed:Site"] = site,
                ["SecureFed:Aggregator"] = Address.ToString(),
                ["SecureFed:KitDirectory"] = SiteKitDirectories[site],
                ["SecureFed:DataDirectory"] = AgentDataDirectory(site),
            };
            foreach ((string key, string value) in Options.Agent)
            {
                settings["SecureFed:" + key] = value;
            }

            IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
            var agentOptions = new AgentOptions();
            configuration.GetSection(AgentOptions.Section).Bind(agentOptions);
            ILocalTrainer trainer = trainerFactory(site, agentOptions);
            FileLoggerProvider? log = Options.LogDirectory is { } logs ? new FileLoggerProvider(Path.Combine(logs, site + ".log")) : null;
            if (log is not null)
            {
                _logFiles.Add(log);
            }

            IHost host = AgentHost.Build(configuration, spec, trainer, logging => ConfigureLogging(logging, Options, log));
            AgentWorker worker = host.Services.GetRequiredService<AgentWorker>();
            if (Options.Drop is { } drop && drop.Site == site)
            {
                worker.Dropout = new DropoutHook(drop.Round, drop.Stage);
            }

            configure?.Invoke(worker);
            Workers.Add(worker);
            _agentHosts.Add(host);
        }

        foreach (IHost host in _agentHosts)
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits until the aggregator has run its rounds and every agent has stopped.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await Coordinator.Finished.WaitAsync(cts.Token).ConfigureAwait(false);
            foreach (IHost host in _agentHosts)
            {
                await host.WaitForShutdownAsync(cts.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException(string.Create(CultureInfo.InvariantCulture,
                $"the federation did not finish within {timeout.TotalMinutes:F0} minutes; the logs folder of the output folder shows the last round it reached."));
        }
    }

    /// <summary>
    /// Stops every agent host (in parallel) and then the aggregator, each given <paramref name="timeout"/> to finish
    /// its calls; errors of hosts that already failed are not rethrown (they have been reported).
    /// </summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        await Task.WhenAll(_agentHosts.Select(h => StopQuietlyAsync(h, timeout))).ConfigureAwait(false);
        await StopQuietlyAsync(Aggregator, timeout).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        await WaitForWorkersAsync().ConfigureAwait(false);
        foreach (IHost host in _agentHosts)
        {
            host.Dispose();
        }

        try
        {
            await Aggregator.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            foreach (FileLoggerProvider log in _logFiles)
            {
                log.Dispose();
            }
        }
    }

    /// <summary>
    /// Waits until every agent worker has returned, however long its host's stop gave it. A host's StopAsync gives up
    /// after its timeout while the worker may still be in local training, in native code (libtorch, ONNX Runtime's
    /// encoder): disposing its services then, or the demo returning and the process exiting, would end that code under a
    /// running thread (ONNX Runtime errors on stderr, at worst a crash). Stopped, a trainer returns at its next check
    /// (between DP-SGD steps, between the encoder's sentences); a second Ctrl-C still ends the process at once (CliApp).
    /// </summary>
    private async Task WaitForWorkersAsync()
    {
        foreach (AgentWorker worker in Workers)
        {
            if (worker.ExecuteTask is Task running)
            {
                // The worker reports its own failures (AgentWorker.Failure): here only its end matters.
                await running.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private static async Task StopQuietlyAsync(IHost host, TimeSpan timeout)
    {
        try
        {
            await host.StopAsync(timeout).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or AggregateException or InvalidOperationException or IOException)
        {
            // A host that failed may rethrow its failure on stop; it was reported when it happened.
        }
    }
}
