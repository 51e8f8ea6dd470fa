using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using SecureFed.Aggregator.Operations;
using SecureFed.Federation;

namespace SecureFed.Aggregator;

/// <summary>
/// Builds the aggregator as an ASP.NET Core host: Kestrel with HTTPS and mandatory client certificates issued by the
/// federation CA, the Aggregation gRPC service, the standard gRPC health service, and the round coordinator.
/// </summary>
public static class AggregatorHost
{
    /// <summary>Maximum size of one gRPC message in either direction.</summary>
    public const int MaxMessageBytes = 4 * 1024 * 1024;

    /// <summary>
    /// The framework's log levels under the agent-facing listeners, as configuration (<c>Logging:LogLevel</c>): ASP.NET Core and
    /// grpc-dotnet at Warning. At their default, Information, they write about five lines for every request (request start and
    /// end, endpoint, the call's status and detail), so one site calling without pause, even refused each time, writes
    /// thousands of lines a second past the per-site bound on refusal lines (threat model C19). A <c>Logging</c> section of the
    /// aggregator's configuration overrides them.
    /// </summary>
    public static IReadOnlyDictionary<string, string?> FrameworkLogLevels { get; } = new Dictionary<string, string?>(StringComparer.Ordinal)
    {
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        ["Logging:LogLevel:Grpc"] = "Warning",
    };

    /// <summary>
    /// Keys of the <c>SecureFed</c> section that are no aggregator setting (typos binding would ignore); <c>ModelSpec</c>
    /// is read by the CLI and <c>Cluster</c> is the cluster's own section.
    /// </summary>
    public static IReadOnlyList<string> UnknownSettings(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return SettingNames.Unknown(AggregatorOptions.Section, configuration.GetSection(AggregatorOptions.Section).GetChildren().Select(c => c.Key), typeof(AggregatorOptions), "ModelSpec", "Cluster");
    }

    /// <summary>
    /// Values of the <c>SecureFed</c> section that binding would drop or fail on (SettingNames.Shape): one value for a
    /// list, an object for one value, a value not of the setting's type; each named with its key, value and the type.
    /// </summary>
    public static IReadOnlyList<string> WrongValues(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return SettingNames.Shape(AggregatorOptions.Section, [.. configuration.GetSection(AggregatorOptions.Section).GetChildren().Select(Node)], typeof(AggregatorOptions));
    }

    /// <summary>A configuration section as SettingNames sees it.</summary>
    public static SettingNode Node(IConfigurationSection section)
    {
        ArgumentNullException.ThrowIfNull(section);
        return new SettingNode(section.Key, section.Value, [.. section.GetChildren().Select(Node)]);
    }

    /// <summary>
    /// Creates the host from configuration (section <c>SecureFed</c>). Options are validated here: every problem is
    /// reported at once, naming the setting.
    /// </summary>
    /// <param name="configuration">Configuration with the <c>SecureFed</c> section.</param>
    /// <param name="initialModel">Optional initial model (used when the store and the options have none).</param>
    /// <param name="configureLogging">Optional logging set-up (e.g. quieter in the demo).</param>
    public static WebApplication Build(IConfiguration configuration, float[]? initialModel = null, Action<ILoggingBuilder>? configureLogging = null)
        => Build(configuration, initialModel is null ? null : () => initialModel, configureLogging);

    /// <summary>
    /// As <see cref="Build(IConfiguration, float[], Action{ILoggingBuilder})"/>, but the initial model is only built
    /// when it is needed (no model in the store and no <c>InitialModel</c> file): building the default tagger loads
    /// libtorch, about 150 MB of resident memory the aggregator otherwise never uses.
    /// </summary>
    /// <param name="configuration">Configuration with the <c>SecureFed</c> section.</param>
    /// <param name="initialModelFactory">Builds the initial model on demand; may be null.</param>
    /// <param name="configureLogging">Optional logging set-up.</param>
    public static WebApplication Build(IConfiguration configuration, Func<float[]>? initialModelFactory, Action<ILoggingBuilder>? configureLogging = null)
        => Build(configuration, initialModelFactory, roundServers: null, configureLogging);

    /// <summary>
    /// As <see cref="Build(IConfiguration, Func{float[]}, Action{ILoggingBuilder})"/>, with the server side of each round
    /// opened by <paramref name="roundServers"/> (the aggregator cluster's coordinator silo, docs/cluster.md §6); null
    /// keeps every round in this process.
    /// </summary>
    /// <param name="configuration">Configuration with the <c>SecureFed</c> section.</param>
    /// <param name="initialModelFactory">Builds the initial model on demand; may be null.</param>
    /// <param name="roundServers">Opens each round's server side; null for this process.</param>
    /// <param name="configureLogging">Optional logging set-up.</param>
    public static WebApplication Build(IConfiguration configuration, Func<float[]>? initialModelFactory, IRoundServerFactory? roundServers, Action<ILoggingBuilder>? configureLogging = null)
        => Build(configuration, initialModelFactory, roundServers, fence: null, configureLogging);

    /// <summary>
    /// As <see cref="Build(IConfiguration, Func{float[]}, IRoundServerFactory, Action{ILoggingBuilder})"/>, with the
    /// coordinator driving rounds only while <paramref name="fence"/> holds (the cluster's coordinator lease,
    /// docs/cluster.md §6); null: always (the single process).
    /// </summary>
    /// <param name="configuration">Configuration with the <c>SecureFed</c> section.</param>
    /// <param name="initialModelFactory">Builds the initial model on demand; may be null.</param>
    /// <param name="roundServers">Opens each round's server side; null for this process.</param>
    /// <param name="fence">The coordinator lease; null for the single process.</param>
    /// <param name="configureLogging">Optional logging set-up.</param>
    public static WebApplication Build(IConfiguration configuration, Func<float[]>? initialModelFactory, IRoundServerFactory? roundServers, ICoordinatorFence? fence, Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = new AggregatorOptions();
        IReadOnlyList<string> wrongValues = WrongValues(configuration);
        if (wrongValues.Count == 0)
        {
            configuration.GetSection(AggregatorOptions.Section).Bind(options); // cannot fail: every value has its setting's type
        }

        IReadOnlyList<string> problems = [.. UnknownSettings(configuration), .. wrongValues, .. wrongValues.Count == 0 ? options.Validate() : []];
        if (problems.Count > 0)
        {
            throw new OptionsValidationException(AggregatorOptions.Section, typeof(AggregatorOptions), problems);
        }

        AggregatorState state = AggregatorState.Open(options, initialModelFactory);
        try
        {
            // Fails the start-up (naming the file) when the admin listener is on and the operator's verifier is missing.
            OperatorCredential? operatorCredential = options.AdminEnabled ? OperatorCredential.LoadVerifier(options.OperatorTokenVerifierPath) : null;
            var builder = WebApplication.CreateSlimBuilder();
            builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = FrameworkLogLevels }); // below every other source
            builder.Configuration.AddConfiguration(configuration);
            if (configureLogging is not null)
            {
                configureLogging(builder.Logging);
            }

            var listen = new Uri(options.Listen);
            var connections = new ConnectionGate(options.MaxConnectionsPerSite);
            builder.Services.AddSingleton(connections);
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                AgentListener.Listen(kestrel, listen, state.Kit, connections);
                if (options.AdminEnabled)
                {
                    AdminListener.Listen(kestrel, new Uri(options.AdminListen!));
                }
            });

            builder.Services.AddSingleton(state);
            builder.Services.AddSingleton(Options.Create(options));
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddSingleton<FederationStatusCache>();
            var uploads = new UploadLimiter(options.MaxConcurrentUploads);
            builder.Services.AddSingleton(uploads);
            // One pace for every upload call (the service is built per call): its accounts are per site and attempt.
            builder.Services.AddSingleton(sp => new UploadPace(options.MinUploadWordsPerSecond, options.UploadGraceSeconds, sp.GetRequiredService<TimeProvider>()));
            builder.Services.AddSingleton(sp => new ModelDownloadGate(options.ModelDownloadBurst, TimeSpan.FromSeconds(options.ModelDownloadRefillSeconds), sp.GetRequiredService<TimeProvider>()));
            var bulkCalls = new BulkCallGate(options.MaxBulkCallsPerSite, options.MaxCallsPerSite);
            builder.Services.AddSingleton(bulkCalls);
            builder.Services.AddSingleton(sp => new RefusalAudit(state.Audit, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<RefusalAudit>>()));
            builder.Services.AddSingleton(sp => new AggregatorTelemetry(
                sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), state, Options.Create(options), sp.GetRequiredService<TimeProvider>(), uploads));
            AddOpenTelemetry(builder.Services, options);
            if (operatorCredential is not null)
            {
                builder.Services.AddSingleton(operatorCredential);
                builder.Services.AddSingleton<OperatorSessions>();
                builder.Services.AddSingleton<OperatorLoginLimiter>();
                builder.Services.AddSingleton<OperatorConsole>();
            }

            builder.Services.AddSingleton(roundServers ?? LocalRoundServerFactory.Instance);
            builder.Services.AddSingleton(fence ?? CoordinatorFence.Always);
            builder.Services.AddSingleton<RoundCoordinator>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<RoundCoordinator>());
            builder.Services.AddGrpc(grpc =>
            {
                grpc.MaxReceiveMessageSize = MaxMessageBytes;
                grpc.MaxSendMessageSize = MaxMessageBytes;
                grpc.EnableDetailedErrors = true;
                grpc.Interceptors.Add<TelemetryInterceptor>();
            });
            builder.Services.AddGrpcHealthChecks().AddCheck("aggregator", () => HealthCheckResult.Healthy("accepting rounds"));
            WebApplication app = builder.Build();

            // Each time the kit is loaded (each start), not once: a key others may read stays visible in the logs.
            ILogger startLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AggregatorHost).FullName!);
            foreach (ReadableKeyFile key in state.Kit.ReadableKeys)
            {
                Log.ReadableKeyAccepted(startLog, key.What, key.Path, key.Mode, key.Owner, state.Kit.Name);
            }

            if (options.AdminEnabled)
            {
                // Before routing: requests on the admin listener never reach the gRPC endpoints.
                AdminListener.Map(app);
                app.Lifetime.ApplicationStarted.Register(() =>
                    Log.AdminListening(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AggregatorHost).FullName!), AdminAddress(app)?.ToString() ?? "?"));
            }

            app.UseRouting();

            // After routing (which selects the endpoint without reading the body; the gate knows a call by its routed gRPC method,
            // however its path is cased), before gRPC: a site's calls over MaxCallsPerSite, and its ShareKeys/Unmask calls over
            // MaxBulkCallsPerSite, are refused before their bodies are read (forwarded calls count against the site they name).
            // Counted and audited like the service's refusals before any round state is touched (the round is unknown: 0;
            // a forwarded call's line names the forwarding silo in 'via').
            // A caller the service's identity rule refuses is refused there too, before its body is read, audited as the
            // service audits it (under the certificate it presented).
            BulkCallGate.UseBulkCallGate(app, bulkCalls, state.Kit.Manifest, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<BulkCallGate>(), (caller, code, reason, message) =>
            {
                string site = caller.Caller;
                ForwardedAudit.Begin(caller.ForwardedBy);
                app.Services.GetRequiredService<AggregatorTelemetry>().Refused(code, reason);
                return app.Services.GetRequiredService<RefusalAudit>().Append(site, reason, f => f.Add("round", 0L).AddSite(site)
                    .Add("status", code.ToString()).Add("reason", message));
            });
            app.MapGrpcService<AggregationService>();
            app.MapGrpcHealthChecksService();
            app.Lifetime.ApplicationStopped.Register(() =>
            {
                // The suppressed refusals' counts go into the audit log before it closes.
                RefusalAudit refusals = app.Services.GetRequiredService<RefusalAudit>();
                refusals.Dispose();
                try
                {
                    refusals.Flush();
                }
                finally
                {
                    state.Dispose();
                }
            });
            return app;
        }
        catch
        {
            state.Dispose();
            throw;
        }
    }

    /// <summary>The address Kestrel actually bound for the agents (after start; resolves port 0).</summary>
    public static Uri BoundAddress(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .First(a => a.StartsWith("https://", StringComparison.Ordinal));
        return new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
    }

    /// <summary>The admin listener's address (console at /, metrics at /metrics) after start, or null when it is off.</summary>
    public static Uri? AdminAddress(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        string? address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .FirstOrDefault(a => a.StartsWith("http://", StringComparison.Ordinal));
        return address is null ? null : new Uri(address);
    }

    /// <summary>
    /// OpenTelemetry: the aggregator's meter with ASP.NET Core (gRPC calls included) and runtime instrumentation, read by
    /// the Prometheus endpoint on the admin listener and/or pushed over OTLP; traces (one per round, a span per stage,
    /// plus the server side of the agents' calls, which carry their trace context) only when OTLP is configured.
    /// Nothing is registered when neither is on.
    /// </summary>
    private static void AddOpenTelemetry(IServiceCollection services, AggregatorOptions options)
    {
        bool otlp = !string.IsNullOrWhiteSpace(options.OtlpEndpoint);
        if (!options.AdminEnabled && !otlp)
        {
            return;
        }

        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("securefed-aggregator", serviceNamespace: options.Federation))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(AggregatorTelemetry.Name).AddAspNetCoreInstrumentation().AddRuntimeInstrumentation();

                // Meters are process-wide by name: read only this host's (made by its IMeterFactory), not those of
                // another aggregator in the same process (as in the tests).
                ((IDeferredMeterProviderBuilder)metrics).Configure((sp, b) =>
                {
                    var factory = sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
                    b.AddView(instrument => instrument.Meter.Scope is not null && !ReferenceEquals(instrument.Meter.Scope, factory) ? MetricStreamConfiguration.Drop : null);
                });
                if (options.AdminEnabled)
                {
                    metrics.AddPrometheusExporter();
                }

                if (otlp)
                {
                    metrics.AddOtlpExporter(o => o.Endpoint = new Uri(options.OtlpEndpoint!));
                }
            });
        if (otlp)
        {
            telemetry.WithTracing(tracing => tracing
                .AddSource(AggregatorTelemetry.Name)
                .AddAspNetCoreInstrumentation()
                .AddOtlpExporter(o => o.Endpoint = new Uri(options.OtlpEndpoint!)));
        }
    }
}
