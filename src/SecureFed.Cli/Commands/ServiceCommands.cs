using System.CommandLine;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Cluster;
using SecureFed.Tagger;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed aggregator --config FILE</c> and <c>securefed agent --config FILE</c>: the long-running services (and
/// <c>securefed aggregator compact</c> and <c>securefed aggregator exclusions</c>, <see cref="AggregatorCompactCommand"/> and
/// <see cref="AggregatorExclusionsCommand"/>, for a stopped aggregator's round store).
/// Configuration: the JSON file, then environment variables (<c>SecureFed__Name</c>), then
/// <c>--SecureFed:Name=value</c> arguments. Relative paths in the file are relative to the file's folder.
/// </summary>
internal static class ServiceCommands
{
    /// <summary>The start of the line a cluster's coordinator writes before it stops, followed by the bytes the other silos forwarded to it.</summary>
    internal const string ForwardedBytesLine = "requests forwarded by other silos, bytes: ";

    private static readonly string[] PathKeys = ["KitDirectory", "DataDirectory", "InitialModel", "TrainFile", "DevFile", "ModelSpec"];

    public static IEnumerable<Command> Create()
    {
        yield return Aggregator();
        yield return AgentCommand();
    }

    /// <summary>
    /// How settings follow <c>--config</c> on the command line: the help listed them only as "additional arguments passed
    /// to the application", while start-up errors tell the operator to add one (e.g. <c>--SecureFed:RepairTornAuditTail=true</c>).
    /// </summary>
    private static string SettingsAfterConfig(string example) =>
        $"Settings may follow it, each overriding the file and the environment: --SecureFed:Name=value (e.g. {example}; " +
        "--SecureFed:RepairTornAuditTail=true for one start); README.md 'Configuration reference' lists them.";

    private static Command Aggregator()
    {
        var config = new Option<FileInfo>("--config") { Description = "aggregator.json (as written by 'securefed provision'). " + SettingsAfterConfig("--SecureFed:Rounds=5"), Required = true };
        var command = new Command("aggregator", "Run the aggregator service (gRPC over mTLS, health service, SQLite state) until its rounds are done or Ctrl+C; 'aggregator compact' compacts a stopped one's round store, 'aggregator exclusions' lists or clears the sites it found at fault, 'aggregator export-model' writes a stopped one's fused model.") { config };
        command.TreatUnmatchedTokensAsErrors = false;
        command.Subcommands.Add(AggregatorCompactCommand.Create());
        command.Subcommands.Add(AggregatorExclusionsCommand.Create());
        command.Subcommands.Add(AggregatorExportModelCommand.Create());
        command.SetAction(async (parse, ct) =>
        {
            IConfiguration configuration = Load(parse.GetValue(config)!, parse.UnmatchedTokens);
            if (configuration.GetSection(AggregatorClusterOptions.Section).Exists())
            {
                return await RunClusterSiloAsync(configuration, parse, ct).ConfigureAwait(false);
            }

            return await RunAggregatorAsync(configuration, parse, roundServers: null, fence: null, ct).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary>
    /// The aggregator's configuration as the service reads it: <paramref name="configuration"/> with the model spec's
    /// SHA-256 and, unless the configuration names its own, the spec's entity types for federated evaluation.
    /// </summary>
    private static IConfiguration AggregatorConfiguration(IConfiguration configuration, out ModelSpec spec)
    {
        spec = Spec(configuration);
        CheckLayerScaleCount(configuration, spec);
        var overrides = new Dictionary<string, string?> { ["SecureFed:ModelSpecSha256"] = spec.Sha256 };
        if (configuration["SecureFed:ModelParameterCount"] is null)
        {
            // The spec's model size (computed without libtorch), unless the configuration sets its own: a benchmark's
            // synthetic model of --parameters sets 0 (unchecked).
            overrides["SecureFed:ModelParameterCount"] = spec.Config.ParameterCount(spec.Labels.Count).ToString(CultureInfo.InvariantCulture);
        }

        // Federated evaluation scores the spec's entity types (unless the configuration names its own).
        if (!configuration.GetSection("SecureFed:EvaluationEntityTypes").GetChildren().Any())
        {
            foreach ((string type, int i) in spec.EntityTypes.Distinct(StringComparer.Ordinal).Select((t, i) => (t, i)))
            {
                overrides[string.Create(CultureInfo.InvariantCulture, $"SecureFed:EvaluationEntityTypes:{i}")] = type;
            }
        }

        return new ConfigurationBuilder().AddConfiguration(configuration).AddInMemoryCollection(overrides).Build();
    }

    /// <summary>
    /// Layer scales (<c>SecureFed:DpSgdLayerScales</c>) are one factor per parameter tensor of the model the spec names:
    /// with another count every agent declines every round ("the round announces N DP-SGD layer scales, but this site's
    /// model has M parameter tensors"), which the aggregator's own checks could not see (it knew only the spec's hash). A
    /// usage error naming both counts instead, before anything starts. Builds the model (libtorch) only when scales are set.
    /// </summary>
    private static void CheckLayerScaleCount(IConfiguration configuration, ModelSpec spec)
    {
        int scales = configuration.GetSection("SecureFed:DpSgdLayerScales").GetChildren().Count();
        if (scales == 0)
        {
            return;
        }

        int tensors;
        using (TaggerModel model = TaggerModel.Create(spec.Config, spec.Labels, seed: 1, device: "cpu"))
        {
            tensors = model.ParameterLayout.Count;
        }

        if (scales != tensors)
        {
            string model = configuration["SecureFed:ModelSpec"] is { Length: > 0 } path ? $"SecureFed:ModelSpec {path}" : "the default clinical model";
            throw new UsageException(string.Create(CultureInfo.InvariantCulture,
                $"SecureFed:DpSgdLayerScales has {scales} entries, but the model ({model}) has {tensors} parameter tensors: every agent would decline every round. Compute them for this model with 'securefed model layer-scales' (docs/PROTOCOL.md, \"Layer scales\")."));
        }
    }

    /// <summary>
    /// The aggregator service until its rounds are done or Ctrl+C: every round in this process, or, on the cluster's
    /// coordinator silo, each round's state in the cluster (<paramref name="roundServers"/>).
    /// </summary>
    private static async Task<int> RunAggregatorAsync(IConfiguration configuration, ParseResult parse, IRoundServerFactory? roundServers, ICoordinatorFence? fence, CancellationToken ct)
    {
        IConfiguration full = AggregatorConfiguration(configuration, out ModelSpec spec);
        WebApplication app;
        try
        {
            // Built only when the store has no model and no InitialModel file is set (it loads libtorch).
            app = AggregatorHost.Build(full, () => TaggerLocalTrainer.InitialParameters(spec, seed: 1), roundServers, fence, QuietHostFailures);
        }
        catch (OptionsValidationException ex)
        {
            throw new UsageException("invalid configuration:\n  " + string.Join("\n  ", ex.Failures));
        }

        var coordinator = (RoundCoordinator)app.Services.GetService(typeof(RoundCoordinator))!;
        if (roundServers is null)
        {
            // Settings that leave no round possible fail here, before the listener opens, in one line (not as the
            // hosted service's failure, which the host logs with a stack trace).
            await CheckBeforeListeningAsync(app, coordinator).ConfigureAwait(false);
        }

        await StartListeningAsync(app, full, cluster: roundServers is not null, ct).ConfigureAwait(false);
        await parse.InvocationConfiguration.Output.WriteLineAsync($"aggregator listening on {ListenDescription(app, full)} (model spec {spec.Sha256[..12]}…); Ctrl+C to stop").ConfigureAwait(false);
        var lifetime = (IHostApplicationLifetime)app.Services.GetService(typeof(IHostApplicationLifetime))!;
        await Task.WhenAny(coordinator.Finished, Task.Delay(Timeout.Infinite, lifetime.ApplicationStopping), Task.Delay(Timeout.Infinite, ct)).ConfigureAwait(false);
        bool roundsDone = coordinator.IsFinished; // read before the stop, which finishes the coordinator too
        if (coordinator.Failure is Exception failure)
        {
            // The host's own failure lines are filtered (QuietHostFailures): an expected failure is one line, anything
            // else keeps its stack trace for the bug report.
            await parse.InvocationConfiguration.Error.WriteLineAsync(ExpectedFailure(failure) ? $"aggregator stopped: {failure.Message}" : $"aggregator stopped: {failure}").ConfigureAwait(false);
            try
            {
                await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
                await app.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ReferenceEquals(ex, failure) || ex is AggregateException or OperationCanceledException)
            {
                // The host may rethrow the coordinator's failure on stop; it has been reported above.
            }

            return CliApp.ExitFailure;
        }

        if (coordinator.IsFinished && !ct.IsCancellationRequested && !lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // Linger so that agents polling for the next round hear that the federation has finished.
            await parse.InvocationConfiguration.Output.WriteLineAsync("federation finished; telling the agents, then stopping").ConfigureAwait(false);
            // A Ctrl-C now cuts the lingering short but the rounds are done: stop cleanly below, exit 0.
            await Task.WhenAny(Task.Delay(TimeSpan.FromSeconds(10), ct)).ConfigureAwait(false);
        }

        if (roundServers is not null)
        {
            // The cluster's coordinator: what the other silos' fronts forwarded to it (bench cluster --agents-via front reads this line).
            var telemetry = (Aggregator.Operations.AggregatorTelemetry)app.Services.GetService(typeof(Aggregator.Operations.AggregatorTelemetry))!;
            await parse.InvocationConfiguration.Output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"{ForwardedBytesLine}{telemetry.ForwardedRequestBytes} (gRPC message bytes of the agents' requests other silos forwarded to this coordinator)")).ConfigureAwait(false);
        }

        await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        await app.DisposeAsync().ConfigureAwait(false);
        // Stopped by Ctrl-C before its rounds were done: the same exit code as an agent's (README "Exit codes").
        return ct.IsCancellationRequested && !roundsDone ? CliApp.ExitCancelled : CliApp.ExitOk;
    }

    /// <summary>
    /// Drops the generic host's error lines ("Hosting failed to start", "BackgroundService failed", each with a stack
    /// trace): the aggregator command reports those failures itself, in one line naming the cause.
    /// </summary>
    private static void QuietHostFailures(ILoggingBuilder logging) =>
        logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", level => level is LogLevel.Warning);

    /// <summary>A failure whose message says everything (a setting, a file, the database, the lease): no stack trace.</summary>
    private static bool ExpectedFailure(Exception failure) => failure is InvalidOperationException or IOException or InvalidDataException
        or UnauthorizedAccessException or CoordinatorLeaseLostException or System.Data.Common.DbException or TimeoutException or System.Security.Cryptography.CryptographicException;

    /// <summary><see cref="RoundCoordinator.CheckStartable"/>, the app disposed when it fails.</summary>
    private static async Task CheckBeforeListeningAsync(WebApplication app, RoundCoordinator coordinator)
    {
        try
        {
            coordinator.CheckStartable();
        }
        catch (InvalidOperationException)
        {
            await DisposeQuietlyAsync(app).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Starts the host. An address that is not this machine's (<c>https://8.8.8.8:7443</c>) fails the bind with a raw
    /// <see cref="System.Net.Sockets.SocketException"/>, which crashed the process (exit 134): it becomes one line naming
    /// the settings. A port in use already comes as Kestrel's <see cref="IOException"/>, which named the address but not the
    /// setting nor what to do: it becomes one line naming both (<see cref="AddressInUse"/>), except the agents' address on
    /// the cluster's coordinator (<paramref name="cluster"/>), which keeps Kestrel's exception for the silo's own message
    /// (<see cref="TakenAfterFrontStopped"/>: its standby front served that address until the lease was taken).
    /// </summary>
    private static async Task StartListeningAsync(WebApplication app, IConfiguration configuration, bool cluster, CancellationToken ct)
    {
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException
                                     && !(cluster && InUseSetting(configuration, ex.Message) == $"{AggregatorOptions.Section}:Listen"))
        {
            await DisposeQuietlyAsync(app).ConfigureAwait(false);
            throw new IOException(AddressInUse(configuration, ex.Message), ex);
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            await DisposeQuietlyAsync(app).ConfigureAwait(false);
            string listen = configuration[$"{AggregatorOptions.Section}:Listen"] ?? new AggregatorOptions().Listen;
            string? admin = configuration[$"{AggregatorOptions.Section}:AdminListen"];
            string which = string.IsNullOrWhiteSpace(admin) ? $"SecureFed:Listen {listen}" : $"SecureFed:Listen {listen} or SecureFed:AdminListen {admin}";
            throw new IOException($"the aggregator cannot listen on {which}: {ex.Message}. Give an address of this machine (one of its IP addresses, 0.0.0.0 for every interface, 127.0.0.1 or localhost) or a host name (the aggregator then listens on every interface).", ex);
        }
    }

    /// <summary>
    /// Which setting names the address Kestrel reported in use (<paramref name="bindFailure"/>, its "Failed to bind to
    /// address …" message): the admin listener is the aggregator's only plain <c>http://</c> endpoint, the agents' the only
    /// <c>https://</c> one; null when the message names neither.
    /// </summary>
    internal static string? InUseSetting(IConfiguration configuration, string bindFailure)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(bindFailure);
        if (bindFailure.Contains("https://", StringComparison.OrdinalIgnoreCase))
        {
            return $"{AggregatorOptions.Section}:Listen";
        }

        return bindFailure.Contains("http://", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrWhiteSpace(configuration[$"{AggregatorOptions.Section}:AdminListen"])
            ? $"{AggregatorOptions.Section}:AdminListen"
            : null;
    }

    /// <summary>
    /// The aggregator's error when another process holds one of its addresses, in one line: the setting that names the
    /// address, the address, and what to do (stop that process, or give the setting a free port, with an example).
    /// Before, only Kestrel's "Failed to bind to address https://127.0.0.1:7443: address already in use." was printed.
    /// </summary>
    /// <param name="configuration">The aggregator's configuration as the service reads it.</param>
    /// <param name="bindFailure">Kestrel's message, naming the address it could not bind.</param>
    internal static string AddressInUse(IConfiguration configuration, string bindFailure)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(bindFailure);
        string listenKey = $"{AggregatorOptions.Section}:Listen";
        string adminKey = $"{AggregatorOptions.Section}:AdminListen";
        string listen = configuration[listenKey] is { Length: > 0 } l ? l : new AggregatorOptions().Listen;
        string? admin = configuration[adminKey];
        string? key = InUseSetting(configuration, bindFailure);
        if (key is null)
        {
            string which = string.IsNullOrWhiteSpace(admin) ? $"{listenKey} {listen}" : $"{listenKey} {listen} or {adminKey} {admin}";
            return $"the aggregator cannot listen on {which}: {bindFailure.TrimEnd('.')}. Stop the process that holds the address, or set the setting to a free port.";
        }

        (string value, string other) = key == listenKey ? (listen, admin ?? "") : (admin!, listen);
        string address = Uri.TryCreate(value, UriKind.Absolute, out Uri? uri) ? uri.GetLeftPart(UriPartial.Authority) : value;
        string example = uri is null ? $"--{key}=…" : $"--{key}={FreePortExample(uri, other)}";
        return $"the aggregator cannot listen on {address} ({key}): the address is already in use by another process. Stop that process, or set {key} to a free address, e.g. {example}.";
    }

    /// <summary><paramref name="address"/> with the next port up (the one after that when <paramref name="other"/>, the aggregator's other listener, has it).</summary>
    private static string FreePortExample(Uri address, string other)
    {
        int otherPort = Uri.TryCreate(other, UriKind.Absolute, out Uri? o) ? o.Port : -1;
        int port = address.Port + 1;
        if (port == otherPort)
        {
            port++;
        }

        return new UriBuilder(address) { Port = port > 65_535 ? 7_444 : port }.Uri.GetLeftPart(UriPartial.Authority);
    }

    private static async Task DisposeQuietlyAsync(WebApplication app)
    {
        try
        {
            await app.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException or OperationCanceledException or AggregateException)
        {
            // The start-up already failed: that failure is the one reported.
        }
    }

    /// <summary>
    /// Where the agents' listener is, as the operator should read it: the bound address for an IP address or localhost; for
    /// <c>0.0.0.0</c>, <c>[::]</c> or a host name (which Kestrel binds on every interface), that it listens on every
    /// interface. Before, a host name that does not resolve printed 127.0.0.1 while the port was open on every interface.
    /// </summary>
    internal static string ListenDescription(WebApplication app, IConfiguration configuration)
    {
        Uri bound = AggregatorHost.BoundAddress(app);
        string listen = configuration[$"{AggregatorOptions.Section}:Listen"] ?? new AggregatorOptions().Listen;
        string host = Uri.TryCreate(listen, UriKind.Absolute, out Uri? uri) ? uri.Host : "";
        if (host == "localhost")
        {
            return bound.ToString();
        }

        if (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out System.Net.IPAddress? ip))
        {
            return ip.Equals(System.Net.IPAddress.Any) || ip.Equals(System.Net.IPAddress.IPv6Any)
                ? string.Create(CultureInfo.InvariantCulture, $"every interface of this machine, port {bound.Port} ({bound} from here)")
                : bound.ToString();
        }

        return string.Create(CultureInfo.InvariantCulture, $"every interface of this machine, port {bound.Port} (SecureFed:Listen names the host '{host}', not an address: agents reach it by that name)");
    }

    private static Command AgentCommand()
    {
        var config = new Option<FileInfo>("--config") { Description = "agent.json (as written by 'securefed provision'). " + SettingsAfterConfig("--SecureFed:TrainFile=/data/notes-train.conll"), Required = true };
        var command = new Command("agent", "Run a hospital's agent: train locally with DP-SGD, take part in secure aggregation, keep the privacy ledger and audit log.") { config };
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetAction(async (parse, ct) =>
        {
            IConfiguration configuration = Load(parse.GetValue(config)!, parse.UnmatchedTokens);
            ModelSpec spec = Spec(configuration);
            IHost host;
            try
            {
                host = AgentHost.Build(configuration, spec);
            }
            catch (OptionsValidationException ex)
            {
                throw new UsageException("invalid configuration:\n  " + string.Join("\n  ", ex.Failures));
            }
            catch (ArgumentException ex)
            {
                // The site's data does not fit its settings (an empty SecureFed:TrainFile, one tagging none of the model's
                // types, SecureFed:AnnotatedTypes naming a type the model does not tag).
                throw new UsageException("invalid configuration: " + ex.Message);
            }

            // Taken before RunAsync, which disposes the host (and its services) when it returns.
            var worker = (AgentWorker?)host.Services.GetService(typeof(AgentWorker));
            await host.RunAsync(ct).ConfigureAwait(false);
            if (worker?.Failure is Exception failure)
            {
                // The full trace is in the agent's log; the operator gets one line and a non-zero exit code.
                await parse.InvocationConfiguration.Error.WriteLineAsync($"agent {worker.SiteName} stopped: {LocalTrainingException.FirstLine(failure.Message)}").ConfigureAwait(false);
                return CliApp.ExitFailure;
            }

            if (ct.IsCancellationRequested)
            {
                // Ctrl-C: the worker logged one line ("stopped by the operator"); the exit code says how it ended.
                return CliApp.ExitCancelled;
            }

            return CliApp.ExitOk;
        });
        return command;
    }

    /// <summary>
    /// Cluster mode (the config has a <c>SecureFed:Cluster</c> section): this process is one silo of the aggregator
    /// cluster (docs/cluster.md). Every problem of the section is reported at once. The coordinator silo
    /// (<see cref="AggregatorClusterOptions.Coordinator"/>) also runs the aggregator service over the cluster.
    /// </summary>
    private static async Task<int> RunClusterSiloAsync(IConfiguration configuration, ParseResult parse, CancellationToken cancellationToken)
    {
        TextWriter output = parse.InvocationConfiguration.Output;
        var options = new AggregatorClusterOptions();
        IReadOnlyList<string> wrongValues = Federation.SettingNames.Shape(AggregatorClusterOptions.Section,
            [.. configuration.GetSection(AggregatorClusterOptions.Section).GetChildren().Select(AggregatorHost.Node)], typeof(AggregatorClusterOptions));
        var problems = new List<string>(Federation.SettingNames.Unknown(AggregatorClusterOptions.Section,
            configuration.GetSection(AggregatorClusterOptions.Section).GetChildren().Select(c => c.Key), typeof(AggregatorClusterOptions)));
        problems.AddRange(wrongValues);
        if (wrongValues.Count == 0)
        {
            configuration.GetSection(AggregatorClusterOptions.Section).Bind(options); // cannot fail: every value has its setting's type
            problems.AddRange(options.Validate());
            problems.AddRange(options.ValidateRole(configuration["SecureFed:Listen"], configuration["SecureFed:KitDirectory"]));
        }

        string? federation = configuration["SecureFed:Federation"];
        if (string.IsNullOrWhiteSpace(federation))
        {
            problems.Insert(0, "SecureFed:Federation is required.");
        }

        bool defaultListen = false;
        if (options.Coordinator && wrongValues.Count == 0)
        {
            // A coordinator-eligible silo without SecureFed:Listen is one configured with the aggregator's default address:
            // its standby front runs there, the lease row names it, and its aggregator service binds it after a takeover.
            (configuration, defaultListen) = ResolveCoordinatorListen(configuration);

            // The coordinator is also the aggregator: its settings are checked before the silo starts, all problems at once.
            var aggregator = new AggregatorOptions();
            IReadOnlyList<string> aggregatorWrongValues = AggregatorHost.WrongValues(configuration);
            if (aggregatorWrongValues.Count == 0)
            {
                configuration.GetSection(AggregatorOptions.Section).Bind(aggregator);
            }

            if (string.IsNullOrEmpty(aggregator.ModelSpecSha256))
            {
                aggregator.ModelSpecSha256 = new string('0', 64); // derived from the model spec when the service starts
            }

            IEnumerable<string> aggregatorProblems = aggregatorWrongValues.Count == 0 ? aggregator.Validate() : aggregatorWrongValues;
            problems.AddRange(AggregatorHost.UnknownSettings(configuration).Concat(aggregatorProblems).Where(p => !problems.Contains(p)));
        }

        // Every silo's front buffers slices with its own upload slots: refused before the silo starts, as the coordinator does.
        if (configuration["SecureFed:MaxConcurrentUploads"] is string uploads && AggregatorOptions.ConcurrentUploadsProblem(uploads) is string uploadsProblem
            && !problems.Contains(uploadsProblem))
        {
            problems.Add(uploadsProblem);
        }

        if (problems.Count > 0)
        {
            throw new UsageException("invalid configuration:\n  " + string.Join("\n  ", problems));
        }

        // Mutual TLS on the silo and gateway ports with the aggregator's certificate (docs/cluster.md, "TLS between silos").
        using Federation.PartyKit? siloKit = options.MutualTls ? LoadAggregatorKit(configuration, parse.InvocationConfiguration.Error ?? Console.Error) : null;
        if (siloKit is not null && ClusterTls.Problem(siloKit) is string tlsProblem)
        {
            throw new UsageException($"SecureFed:KitDirectory {tlsProblem}");
        }

        // A coordinator-eligible silo's round-affecting settings, compared with those the last coordinator saved before the
        // silo starts (an operator deploying a silo with other settings hears it now, not at the failover), and again when
        // it takes the lease (docs/cluster.md §6, "Coordinator settings").
        RoundSettings? settings = options.Coordinator ? await CheckCoordinatorSettingsAsync(configuration, options, federation!, output, cancellationToken).ConfigureAwait(false) : null;

        using IHost silo = ClusterHost.BuildSilo(federation!, options, siloKit);
        await silo.StartAsync(cancellationToken).ConfigureAwait(false);
        string role = options.Coordinator ? "coordinator" : "slices only";
        string tls = options.MutualTls ? "mutual TLS with the aggregator's certificate" : "NO TLS (Cluster:Tls is off)";
        await output.WriteLineAsync(FormattableString.Invariant(
            $"aggregator cluster silo of '{federation}' listening on {options.AdvertisedAddress}:{options.SiloPort} (gateway {options.GatewayPort}, {tls}, membership in PostgreSQL, {role}); Ctrl+C to stop")).ConfigureAwait(false);
        if (options.Coordinator)
        {
            // Coordinator-eligible: drive rounds only while holding the coordinator lease (docs/cluster.md §6). Wait for it,
            // restore the state the last coordinator saved in the cluster's database, then run the aggregator with it.
            string holder = silo.Services.GetRequiredService<Orleans.Runtime.ILocalSiloDetails>().SiloAddress.ToParsableString();
            ILogger leaseLogger = silo.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SecureFed.Cluster.Lease");
            await using Npgsql.NpgsqlDataSource database = Npgsql.NpgsqlDataSource.Create(options.ConnectionString);
            var lease = new Cluster.Lease.PostgresCoordinatorLease(database, federation!);
            var coordinatorState = new Cluster.Lease.PostgresCoordinatorState(database, lease);
            // The coordinator serves agents (and the slices it hosts, protocol version 4) on its own Listen address (the
            // aggregator's default when the configuration has none, above), known before the lease is taken: a port of 0 is
            // picked by the standby front below and kept from then on. It goes into the lease row, so the other silos forward
            // agents' control calls to it (docs/cluster.md §6, "Every silo a front").
            var listen = new Uri(configuration["SecureFed:Listen"]!);
            bool picked = listen.Port == 0;
            Cluster.Lease.ClusterCoordinatorFence fence;
            SiloFront? standby = null;
            try
            {
                // While it waits, a standby is a front on its own Listen address like any slice silo (docs/cluster.md §6,
                // "Every silo a front"); the front stops as soon as the lease is taken, before the state is restored, and
                // the aggregator service then binds the same address.
                standby = await SiloFront.StartAsync(configuration, options, silo, siloKit, listen, "SecureFed:Listen",
                    defaultListen ? "the aggregator's default address; this silo's configuration has no SecureFed:Listen" : null, federation!, parse.InvocationConfiguration.Error ?? Console.Error, cancellationToken).ConfigureAwait(false);
                if (picked)
                {
                    // Port 0: from now on the silo is one configured with the port its front bound. Slices placed on it
                    // are announced with that endpoint, the lease row names it, and the aggregator service binds it.
                    listen = new UriBuilder(listen) { Port = standby.Bound.Port }.Uri;
                    configuration = WithListen(configuration, listen);
                }

                string defaulted = defaultListen ? " (SecureFed:Listen not set: the aggregator's default address)" : "";
                await output.WriteLineAsync($"standby: slice uploads served and agents' other calls forwarded to the coordinator on {standby.Bound} until this silo holds the lease{defaulted}").ConfigureAwait(false);
                var keeper = new Cluster.Lease.CoordinatorLeaseKeeper(lease, holder, options.LeaseTerms, TimeProvider.System, leaseLogger)
                {
                    AgentEndpoint = options.AdvertisedAgentEndpoint(listen).GetLeftPart(UriPartial.Authority),
                };

                await output.WriteLineAsync($"waiting for the coordinator lease of '{federation}' (silo {holder}, coordinator settings {settings!.Sha256[..12]}…)").ConfigureAwait(false);
                fence = await Cluster.Lease.ClusterCoordinatorFence.TakeOverAsync(keeper, coordinatorState,
                    configuration["SecureFed:DataDirectory"]!, settings!, options.AcceptChangedSettings, leaseLogger, cancellationToken,
                    acquired: async () =>
                    {
                        if (standby is not null)
                        {
                            await standby.DisposeAsync().ConfigureAwait(false);
                            standby = null;
                        }
                    }).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                await StopStandbyAsync(standby).ConfigureAwait(false);
                await silo.StopAsync(CancellationToken.None).ConfigureAwait(false);
                return CliApp.ExitOk;
            }
            catch (Cluster.Lease.CoordinatorSettingsChangedException ex)
            {
                // Refused at takeover (another coordinator saved other settings while this silo waited): the lease is released.
                await StopStandbyAsync(standby).ConfigureAwait(false);
                await silo.StopAsync(CancellationToken.None).ConfigureAwait(false);
                throw new UsageException(ex.Message);
            }
            catch
            {
                await StopStandbyAsync(standby).ConfigureAwait(false);
                throw;
            }

            await output.WriteLineAsync(FormattableString.Invariant($"coordinator lease acquired (epoch {fence.Epoch}): this silo coordinates the federation")).ConfigureAwait(false);

            // The coordinator's own grain factory: calls to a slice grain go straight to the silo that hosts it.
            var servers = new Cluster.Front.ClusterRoundServerFactory(silo.Services.GetRequiredService<IGrainFactory>(), options.SliceSize,
                silo.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SecureFed.Cluster.Front"),
                silo.Services.GetRequiredService<Orleans.Runtime.ILocalSiloDetails>().SiloAddress.ToParsableString(), fence.Epoch);
            try
            {
                silo.Services.GetRequiredService<Cluster.Front.SiloAgentEndpoint>().Set(options.AdvertisedAgentEndpoint(listen));
                return await RunAggregatorAsync(configuration, parse, servers, fence, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
            {
                // The address was taken by another process between the standby front's stop and this bind. No fallback to
                // another port: agents and the other silos were told this one. The lease is released (finally).
                throw new IOException(TakenAfterFrontStopped(listen, picked, defaultListen, ex.Message), ex);
            }
            finally
            {
                await fence.DisposeAsync().ConfigureAwait(false); // releases the lease if still held: another silo takes over at once
                await silo.StopAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }

        SiloFront? front = null;
        try
        {
            if (!string.IsNullOrWhiteSpace(options.AgentListen))
            {
                // A slice silo serving agents the slices it hosts (protocol version 4) and forwarding the rest (docs/cluster.md §6).
                front = await SiloFront.StartAsync(configuration, options, silo, siloKit, new Uri(options.AgentListen), $"{AggregatorClusterOptions.Section}:AgentListen", null, federation!, parse.InvocationConfiguration.Error ?? Console.Error, cancellationToken).ConfigureAwait(false);
                await output.WriteLineAsync($"slice uploads (protocol version 4) served on {front.Bound}").ConfigureAwait(false);
                await output.WriteLineAsync($"agents' other calls on {front.Bound} forwarded to the coordinator named by the lease row").ConfigureAwait(false);
            }

            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C
        }
        finally
        {
            if (front is not null)
            {
                await front.DisposeAsync().ConfigureAwait(false);
            }
        }

        await silo.StopAsync(CancellationToken.None).ConfigureAwait(false);
        return CliApp.ExitOk;
    }

    /// <summary>
    /// The round-affecting settings of a coordinator-eligible silo (<see cref="RoundSettings"/>, from its configuration as
    /// the aggregator service reads it), checked against those saved in the cluster's database (no lease needed): a
    /// difference is a usage error naming every setting with both values, unless
    /// <see cref="AggregatorClusterOptions.AcceptChangedSettings"/> (then it is printed and the silo goes on).
    /// </summary>
    private static async Task<RoundSettings> CheckCoordinatorSettingsAsync(
        IConfiguration configuration, AggregatorClusterOptions options, string federation, TextWriter output, CancellationToken cancellationToken)
    {
        var aggregatorOptions = new AggregatorOptions();
        AggregatorConfiguration(configuration, out _).GetSection(AggregatorOptions.Section).Bind(aggregatorOptions);
        var settings = RoundSettings.Of(aggregatorOptions);
        await using Npgsql.NpgsqlDataSource database = Npgsql.NpgsqlDataSource.Create(options.ConnectionString);
        var state = new Cluster.Lease.PostgresCoordinatorState(database, new Cluster.Lease.PostgresCoordinatorLease(database, federation));
        Cluster.Lease.SavedRoundSettings? saved = await state.LoadSettingsAsync(cancellationToken).ConfigureAwait(false);
        IReadOnlyList<RoundSettingChange> accepted;
        try
        {
            accepted = Cluster.Lease.ClusterCoordinatorFence.CheckSettings(federation, settings, saved, options.AcceptChangedSettings, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        }
        catch (Cluster.Lease.CoordinatorSettingsChangedException ex)
        {
            throw new UsageException(ex.Message);
        }

        if (accepted.Count > 0)
        {
            await output.WriteLineAsync(FormattableString.Invariant(
                $"coordinator settings differ from those saved by lease epoch {saved!.Epoch}; accepted ({AggregatorClusterOptions.Section}:AcceptChangedSettings), to be written to the audit log at takeover: {RoundSettings.Describe(accepted)}")).ConfigureAwait(false);
        }

        return settings;
    }

    /// <summary>
    /// A coordinator-eligible silo's configuration with <c>SecureFed:Listen</c> resolved: when the key is missing or blank,
    /// <paramref name="configuration"/> with the aggregator's default address (<see cref="AggregatorOptions.Listen"/>), so
    /// the silo behaves exactly as one configured with it (its standby front runs there, the lease row names it, the
    /// aggregator service binds it after a takeover), and <c>Defaulted</c> true; any other value (port 0 included, picked
    /// later by the standby front) unchanged.
    /// </summary>
    internal static (IConfiguration Configuration, bool Defaulted) ResolveCoordinatorListen(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return string.IsNullOrWhiteSpace(configuration["SecureFed:Listen"])
            ? (WithListen(configuration, new Uri(new AggregatorOptions().Listen)), true)
            : (configuration, false);
    }

    /// <summary>
    /// <paramref name="configuration"/> with <c>SecureFed:Listen</c> set to <paramref name="listen"/>: a standby whose Listen
    /// port was 0 binds the aggregator service on the port its front picked (docs/cluster.md §6); a coordinator-eligible
    /// silo without the key gets the aggregator's default (<see cref="ResolveCoordinatorListen"/>).
    /// </summary>
    private static IConfiguration WithListen(IConfiguration configuration, Uri listen)
        => new ConfigurationBuilder().AddConfiguration(configuration)
            .AddInMemoryCollection(new Dictionary<string, string?> { ["SecureFed:Listen"] = listen.GetLeftPart(UriPartial.Authority) }).Build();

    /// <summary>
    /// The error of a coordinator that took the lease but cannot bind its Listen address because another process took it
    /// after the standby front stopped: it names the address, where it came from (a port the front picked for port 0, the
    /// aggregator's default, or <c>SecureFed:Listen</c>) and what to do.
    /// </summary>
    internal static string TakenAfterFrontStopped(Uri listen, bool picked, bool defaulted, string cause)
    {
        string address = listen.GetLeftPart(UriPartial.Authority);
        string origin = picked
            ? "the address this silo's standby front picked for SecureFed:Listen port 0 and announced"
            : defaulted
                ? "the aggregator's default address, which this silo's standby front served (its configuration has no SecureFed:Listen)"
                : "this silo's SecureFed:Listen, which its standby front served";
        string remedy = picked ? "restart this silo, or give SecureFed:Listen a fixed port" : "stop that process and restart this silo, or set SecureFed:Listen to a free address";
        return $"coordinator lease taken, but the aggregator service cannot bind {address}, {origin}: another process took it after the front stopped ({cause}). The lease is released for another coordinator-eligible silo; {remedy}.";
    }

    /// <summary>Stops a standby's front, if it runs.</summary>
    private static async Task StopStandbyAsync(SiloFront? standby)
    {
        if (standby is not null)
        {
            await standby.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A silo's agent-facing front (docs/cluster.md §6, "Every silo a front"): the slices it hosts are taken here (protocol
    /// version 4), every other call is forwarded to the coordinator the lease row names, with the aggregator's certificate
    /// as the TLS client certificate and the site in a header. Run by a slice silo with <c>AgentListen</c>, and by a
    /// coordinator-eligible silo on its <c>Listen</c> address while it waits for the lease.
    /// </summary>
    private sealed class SiloFront : IAsyncDisposable
    {
        private readonly WebApplication _host;
        private readonly Cluster.Front.SliceFront _front;
        private readonly Federation.PartyKit? _ownKit;
        private readonly Npgsql.NpgsqlDataSource _leaseDatabase;

        private SiloFront(WebApplication host, Cluster.Front.SliceFront front, Federation.PartyKit? ownKit, Npgsql.NpgsqlDataSource leaseDatabase, Uri bound)
        {
            _host = host;
            _front = front;
            _ownKit = ownKit;
            _leaseDatabase = leaseDatabase;
            Bound = bound;
        }

        /// <summary>The address agents are told (the listen address, an unspecified host replaced by the advertised one).</summary>
        public Uri Bound { get; }

        /// <summary>
        /// Starts the front on <paramref name="listen"/>, the value of setting <paramref name="listenKey"/> (with
        /// <paramref name="listenNote"/>, when given, saying where it came from). An address another process holds is an
        /// error naming the address and the setting.
        /// </summary>
        public static async Task<SiloFront> StartAsync(IConfiguration configuration, AggregatorClusterOptions options, IHost silo, Federation.PartyKit? siloKit, Uri listen,
            string listenKey, string? listenNote, string federation, TextWriter warnings, CancellationToken cancellationToken)
        {
            Federation.PartyKit? ownKit = siloKit is null ? LoadAggregatorKit(configuration, warnings) : null;
            Federation.PartyKit serving = siloKit ?? ownKit!;
            Npgsql.NpgsqlDataSource? leaseDatabase = null;
            Cluster.Front.SliceFront? front = null;
            WebApplication? host = null;
            try
            {
                if (ClusterTls.Problem(serving) is string clientProblem)
                {
                    throw new UsageException($"SecureFed:KitDirectory {clientProblem}");
                }

                int uploads = new AggregatorOptions().MaxConcurrentUploads;
                if (configuration["SecureFed:MaxConcurrentUploads"] is string configuredUploads)
                {
                    // As the coordinator validates it: one slot would let one site's stalled upload hold it for the whole stage.
                    if (AggregatorOptions.ConcurrentUploadsProblem(configuredUploads) is string uploadsProblem)
                    {
                        throw new UsageException(uploadsProblem);
                    }

                    uploads = int.Parse(configuredUploads, CultureInfo.InvariantCulture);
                }

                // As the coordinator validates them: a silo must not take slower uploads than the coordinator does.
                var pace = new AggregatorOptions();
                foreach ((string key, Action<int> set) in new (string, Action<int>)[] { ("MinUploadWordsPerSecond", v => pace.MinUploadWordsPerSecond = v), ("UploadGraceSeconds", v => pace.UploadGraceSeconds = v) })
                {
                    if (configuration["SecureFed:" + key] is string configured)
                    {
                        set(int.TryParse(configured, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : throw new UsageException($"SecureFed:{key} must be a whole number, got '{configured}'."));
                    }
                }

                if (AggregatorOptions.UploadPaceProblems(pace.MinUploadWordsPerSecond, pace.UploadGraceSeconds).FirstOrDefault() is string paceProblem)
                {
                    throw new UsageException(paceProblem);
                }

                int bulkCalls = int.TryParse(configuration["SecureFed:MaxBulkCallsPerSite"], CultureInfo.InvariantCulture, out int b) && b > 0 ? b : new AggregatorOptions().MaxBulkCallsPerSite;
                int calls = Math.Max(new AggregatorOptions().MaxCallsPerSite, bulkCalls + BulkCallGate.HonestCallsPerSite);
                if (configuration["SecureFed:MaxCallsPerSite"] is string configuredCalls)
                {
                    // As the coordinator validates it (AggregatorOptions.Validate): a front must not run with another limit silently.
                    if (!int.TryParse(configuredCalls, CultureInfo.InvariantCulture, out calls) || calls < bulkCalls + BulkCallGate.HonestCallsPerSite || calls > 1_024)
                    {
                        throw new UsageException($"SecureFed:MaxCallsPerSite must be between {bulkCalls + BulkCallGate.HonestCallsPerSite} (MaxBulkCallsPerSite + the {BulkCallGate.HonestCallsPerSite} calls an honest agent may have in flight) and 1024, got '{configuredCalls}'.");
                    }
                }
                int connections = int.TryParse(configuration["SecureFed:MaxConnectionsPerSite"], CultureInfo.InvariantCulture, out int c) && c > 0 ? c : new AggregatorOptions().MaxConnectionsPerSite;
                string siloName = silo.Services.GetRequiredService<Orleans.Runtime.ILocalSiloDetails>().SiloAddress.ToParsableString();
                leaseDatabase = Npgsql.NpgsqlDataSource.Create(options.ConnectionString);
                var locator = new Cluster.Front.LeaseCoordinatorLocator(new Cluster.Lease.PostgresCoordinatorLease(leaseDatabase, federation), TimeProvider.System);
                front = new Cluster.Front.SliceFront(federation, serving, silo.Services.GetRequiredService<IGrainFactory>(), siloName, uploads)
                {
                    MaxBulkCallsPerSite = bulkCalls,
                    MaxCallsPerSite = calls,
                    MaxConnectionsPerSite = connections,
                    Pace = new UploadPace(pace.MinUploadWordsPerSecond, pace.UploadGraceSeconds),
                    Rounds = silo.Services.GetRequiredService<Cluster.Front.SiloRounds>(),
                    Coordinator = new Cluster.Front.CoordinatorForwarder(federation, serving, siloName, locator,
                        silo.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SecureFed.Cluster.Front")),
                };
                host = Cluster.Front.SliceFrontHost.Build(listen, front);
                try
                {
                    await host.StartAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
                {
                    string note = listenNote is null ? "" : $", {listenNote}";
                    throw new IOException(
                        $"this silo cannot serve agents on {listen.GetLeftPart(UriPartial.Authority)} ({listenKey}{note}): the address is already in use by another process. Stop that process, or set {listenKey} to a free address.",
                        ex);
                }

                Uri bound = options.AdvertisedAgentEndpoint(Cluster.Front.SliceFrontHost.BoundAddress(host));
                silo.Services.GetRequiredService<Cluster.Front.SiloAgentEndpoint>().Set(bound);
                return new SiloFront(host, front, ownKit, leaseDatabase, bound);
            }
            catch
            {
                if (host is not null)
                {
                    await host.DisposeAsync().ConfigureAwait(false);
                }

                front?.Dispose();
                ownKit?.Dispose();
                if (leaseDatabase is not null)
                {
                    await leaseDatabase.DisposeAsync().ConfigureAwait(false);
                }

                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _host.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await _host.DisposeAsync().ConfigureAwait(false);
            _front.Dispose();
            _ownKit?.Dispose();
            await _leaseDatabase.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The aggregator's kit of a silo's <c>SecureFed:KitDirectory</c>; a site's kit or a broken one is a usage error naming it.
    /// With <c>SecureFed:AcceptReadableKeys</c> a key others may only read is accepted and a warning naming it is written to
    /// <paramref name="warnings"/>.
    /// </summary>
    private static Federation.PartyKit LoadAggregatorKit(IConfiguration configuration, TextWriter warnings)
    {
        string directory = configuration["SecureFed:KitDirectory"]!;
        Federation.PartyKit kit;
        try
        {
            kit = Federation.PartyKit.Load(directory, configuration.GetValue<bool>("SecureFed:AcceptReadableKeys"), "setting SecureFed:AcceptReadableKeys to true");
        }
        catch (InvalidDataException ex)
        {
            throw new UsageException($"SecureFed:KitDirectory: {ex.Message}");
        }

        if (!kit.IsAggregator)
        {
            string name = kit.Name;
            string dir = kit.Directory;
            kit.Dispose();
            throw new UsageException($"SecureFed:KitDirectory {dir}: this is the kit of site '{name}', not the aggregator's.");
        }

        foreach (Federation.ReadableKeyFile key in kit.ReadableKeys)
        {
            warnings.WriteLine($"warning: {key.Warning(kit.Name)}");
        }

        return kit;
    }

    /// <summary>JSON file + environment + command-line overrides, with relative paths resolved against the file.</summary>
    internal static IConfiguration Load(FileInfo file, IReadOnlyList<string> overrides)
    {
        if (Directory.Exists(file.FullName))
        {
            throw new UsageException($"--config {file.FullName}: is a folder; give the JSON file in it (aggregator.json or agent.json, as written by 'securefed provision').");
        }

        if (!file.Exists)
        {
            throw new UsageException($"--config {file.FullName}: no such file.");
        }

        EnsureOverridesAreSettings(overrides);

        IConfiguration raw;
        try
        {
            raw = new ConfigurationBuilder()
                .AddJsonFile(file.FullName, optional: false)
                .AddEnvironmentVariables()
                .AddCommandLine([.. overrides])
                .Build();
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException or System.Text.Json.JsonException)
        {
            // The configuration library's own message only says it failed to load the file; where the JSON breaks (line and
            // position) is in the exceptions it wraps.
            throw new UsageException($"--config {file.FullName}: not valid JSON ({JsonProblem(ex)}).");
        }

        string baseDir = file.DirectoryName!;
        var resolved = new Dictionary<string, string?>();
        foreach (string key in PathKeys)
        {
            string? value = raw[$"SecureFed:{key}"];
            if (!string.IsNullOrEmpty(value) && !Path.IsPathRooted(value))
            {
                resolved[$"SecureFed:{key}"] = Path.GetFullPath(Path.Combine(baseDir, value));
            }
        }

        return new ConfigurationBuilder().AddConfiguration(raw).AddInMemoryCollection(resolved).Build();
    }

    /// <summary>
    /// The arguments after <c>--config FILE</c> must be settings (<c>--SecureFed:Name=value</c>, <c>--SecureFed:Name value</c>,
    /// or a <c>Logging:</c> key): anything else (<c>--rounds 5</c> as the demo takes it, a stray word, a typo'd
    /// <c>--confg</c>) would be read as a configuration key no one looks at, or dropped, and the service would start
    /// without it.
    /// </summary>
    /// <exception cref="UsageException">An argument is not a setting; the message names it.</exception>
    internal static void EnsureOverridesAreSettings(IReadOnlyList<string> overrides)
    {
        for (int i = 0; i < overrides.Count; i++)
        {
            string token = overrides[i];
            string key;
            if (token.StartsWith("--", StringComparison.Ordinal) || (token.StartsWith('/') && token.Length > 1))
            {
                string body = token[(token.StartsWith("--", StringComparison.Ordinal) ? 2 : 1)..];
                int eq = body.IndexOf('=', StringComparison.Ordinal);
                key = eq >= 0 ? body[..eq] : body;
                if (eq < 0)
                {
                    i++; // --key value
                    if (i >= overrides.Count)
                    {
                        throw new UsageException($"argument '{token}' has no value: give settings as --SecureFed:Name=value.");
                    }
                }
            }
            else if (token.IndexOf('=', StringComparison.Ordinal) is > 0 and int eq)
            {
                key = token[..eq];
            }
            else
            {
                throw new UsageException($"unexpected argument '{token}': after --config FILE only settings may follow, as --SecureFed:Name=value (e.g. --SecureFed:Rounds=5).");
            }

            string section = key.Split(':')[0];
            if (!section.Equals("SecureFed", StringComparison.OrdinalIgnoreCase) && !section.Equals("Logging", StringComparison.OrdinalIgnoreCase))
            {
                string example = key.Length > 0 && key.All(char.IsAsciiLetter) ? $"--SecureFed:{char.ToUpperInvariant(key[0])}{key[1..]}=…" : "--SecureFed:Rounds=5";
                throw new UsageException($"unknown argument '{token}': settings are given as --SecureFed:Name=value (e.g. {example}); README \"Configuration reference\" lists them.");
            }

            if (!key.Contains(':', StringComparison.Ordinal))
            {
                throw new UsageException($"argument '{token}' names no setting: give it as --SecureFed:Name=value.");
            }
        }
    }

    /// <summary>
    /// What is wrong with a configuration file that failed to load: the innermost exception's message (the JSON reader's,
    /// naming the line and position), without the wrappers' "Failed to load configuration from file …".
    /// </summary>
    private static string JsonProblem(Exception exception)
    {
        Exception inner = exception;
        while (inner.InnerException is { } cause)
        {
            inner = cause;
        }

        return inner.Message.TrimEnd('.');
    }

    /// <summary>The model specification: SecureFed:ModelSpec (a file from 'securefed model spec') or the default clinical tagger.</summary>
    internal static ModelSpec Spec(IConfiguration configuration)
    {
        string? path = configuration["SecureFed:ModelSpec"];
        if (string.IsNullOrEmpty(path))
        {
            return ModelSpec.Clinical(tiny: false);
        }

        if (!File.Exists(path))
        {
            throw new UsageException($"SecureFed:ModelSpec {path}: no such file.");
        }

        return ModelSpec.Load(path);
    }
}
