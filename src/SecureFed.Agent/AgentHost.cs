using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using SecureFed.Federation;
using SecureFed.Tagger;

namespace SecureFed.Agent;

/// <summary>Builds an agent as a generic host (configuration, logging, graceful shutdown).</summary>
public static class AgentHost
{
    /// <summary>
    /// Creates the host. Options are validated here (all problems at once). The trainer defaults to the TorchSharp
    /// tagger on the configured data (or the embedded synthetic corpus for this site's profile).
    /// </summary>
    public static IHost Build(IConfiguration configuration, ModelSpec spec, ILocalTrainer? trainer = null, Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(spec);
        var options = new AgentOptions();
        IReadOnlyList<string> wrongValues = WrongValues(configuration);
        if (wrongValues.Count == 0)
        {
            configuration.GetSection(AgentOptions.Section).Bind(options); // cannot fail: every value has its setting's type
        }

        IReadOnlyList<string> problems = [.. UnknownSettings(configuration), .. wrongValues, .. wrongValues.Count == 0 ? options.Validate() : []];
        if (problems.Count > 0)
        {
            throw new OptionsValidationException(AgentOptions.Section, typeof(AgentOptions), problems);
        }

        AgentState state = AgentState.Open(options);
        try
        {
            bool synthetic = trainer is null && string.IsNullOrEmpty(options.TrainFile);
            trainer ??= CreateTrainer(options, spec);

            // A web host only when the admin listener is on: otherwise the agent listens on nothing.
            WebApplicationBuilder? web = options.AdminEnabled ? WebApplication.CreateSlimBuilder() : null;
            HostApplicationBuilder? plain = web is null ? Host.CreateApplicationBuilder() : null;
            IHostApplicationBuilder builder = (IHostApplicationBuilder?)web ?? plain!;
            builder.Configuration.AddConfiguration(configuration);
            configureLogging?.Invoke(builder.Logging);
            if (web is not null)
            {
                var address = new Uri(options.AdminListen!);
                web.WebHost.ConfigureKestrel(kestrel => AgentAdminListener.Listen(kestrel, address));
            }

            builder.Services.AddSingleton(Options.Create(options));
            builder.Services.AddSingleton(state);
            builder.Services.AddSingleton(trainer);
            builder.Services.AddSingleton(sp =>
            {
                var telemetry = new AgentTelemetry(sp.GetRequiredService<IMeterFactory>());
                telemetry.ObserveLedger(state.Ledger, options);
                return telemetry;
            });
            AddOpenTelemetry(builder.Services, options);
            builder.Services.AddSingleton<AgentWorker>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<AgentWorker>());
            IHost host;
            if (web is not null)
            {
                WebApplication app = web.Build();
                AgentAdminListener.Map(app);
                app.Lifetime.ApplicationStarted.Register(() => Log.MetricsListening(
                    app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AgentHost).FullName!), options.Site, AdminAddress(app)?.ToString() ?? "?"));
                host = app;
            }
            else
            {
                host = plain!.Build();
            }

            // Each time the kit is loaded (each start), not once: a key others may read stays visible in the logs.
            ILogger startLog = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AgentHost).FullName!);
            foreach (ReadableKeyFile key in state.Kit.ReadableKeys)
            {
                Log.ReadableKeyAccepted(startLog, key.What, key.Path, key.Mode, key.Owner, state.Kit.Name);
            }

            IHostApplicationLifetime lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
            lifetime.ApplicationStopped.Register(state.Dispose);
            if (synthetic)
            {
                // A provisioned agent.json has "TrainFile": "": said once at start, as a warning, not left to be noticed in the model.
                lifetime.ApplicationStarted.Register(() => Log.SyntheticCorpus(
                    host.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AgentHost).FullName!), options.Site, options.SyntheticSentences));
            }

            return host;
        }
        catch
        {
            state.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The agent's admin listener address (<c>/metrics</c>) after start, resolving port 0, or null when it is off.
    /// </summary>
    public static Uri? AdminAddress(IHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        string? address = host.Services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>()?.Addresses
            .FirstOrDefault(a => a.StartsWith("http://", StringComparison.Ordinal));
        return address is null ? null : new Uri(address);
    }

    /// <summary>
    /// OpenTelemetry, when <see cref="AgentOptions.OtlpEndpoint"/> or <see cref="AgentOptions.AdminListen"/> is set: this
    /// agent's meter with runtime and HTTP client instrumentation, pushed over OTLP to the hospital's collector and/or
    /// read by the Prometheus endpoint of the admin listener; its traces (source <see cref="AgentTelemetry.Name"/> and the
    /// HTTP client spans of its gRPC calls) only over OTLP. The trace context of the calls to the aggregator is propagated
    /// (W3C <c>traceparent</c>) whether or not this is on.
    /// </summary>
    private static void AddOpenTelemetry(IServiceCollection services, AgentOptions options)
    {
        bool otlp = !string.IsNullOrWhiteSpace(options.OtlpEndpoint);
        if (!otlp && !options.AdminEnabled)
        {
            return;
        }

        Uri? endpoint = otlp ? new Uri(options.OtlpEndpoint!) : null;
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("securefed-agent", serviceInstanceId: options.Site))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(AgentTelemetry.Name).AddRuntimeInstrumentation().AddHttpClientInstrumentation();

                // Meters are process-wide by name: read only this host's (made by its IMeterFactory), not those of
                // another agent in the same process (as in the demo and the tests).
                ((IDeferredMeterProviderBuilder)metrics).Configure((sp, b) =>
                {
                    var factory = sp.GetRequiredService<IMeterFactory>();
                    b.AddView(instrument => instrument.Meter.Scope is not null && !ReferenceEquals(instrument.Meter.Scope, factory) ? MetricStreamConfiguration.Drop : null);
                });
                if (options.AdminEnabled)
                {
                    metrics.AddPrometheusExporter();
                }

                if (endpoint is not null)
                {
                    metrics.AddOtlpExporter(o => o.Endpoint = endpoint);
                }
            });
        if (endpoint is not null)
        {
            telemetry.WithTracing(tracing => tracing
                .AddSource(AgentTelemetry.Name)
                .AddHttpClientInstrumentation()
                .AddOtlpExporter(o => o.Endpoint = endpoint));
        }
    }

    /// <summary>Keys of the <c>SecureFed</c> section that are no agent setting (typos binding would ignore).</summary>
    public static IReadOnlyList<string> UnknownSettings(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return SettingNames.Unknown(AgentOptions.Section, configuration.GetSection(AgentOptions.Section).GetChildren().Select(c => c.Key), typeof(AgentOptions));
    }

    /// <summary>
    /// Values of the <c>SecureFed</c> section that binding would drop or fail on (SettingNames.Shape): one value for a
    /// list, an object for one value, a value not of the setting's type; each named with its key, value and the type.
    /// </summary>
    public static IReadOnlyList<string> WrongValues(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return SettingNames.Shape(AgentOptions.Section, [.. configuration.GetSection(AgentOptions.Section).GetChildren().Select(Node)], typeof(AgentOptions));
    }

    private static SettingNode Node(IConfigurationSection section) => new(section.Key, section.Value, [.. section.GetChildren().Select(Node)]);

    /// <summary>The TorchSharp trainer on the site's data.</summary>
    public static TaggerLocalTrainer CreateTrainer(AgentOptions options, ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<Sentence> train;
        IReadOnlyList<Sentence> dev;
        if (!string.IsNullOrEmpty(options.TrainFile))
        {
            // One spelling per entity type across TrainFile and DevFile, as tagger train across --train and --dev: dev's
            // B-disease next to train's B-Disease is refused naming both files and lines.
            var spellings = new EntityTypeSpellings();
            train = [.. ConllReader.ReadFile(options.TrainFile, spellings)];
            dev = string.IsNullOrEmpty(options.DevFile) ? [] : [.. ConllReader.ReadFile(options.DevFile, spellings)];
            RequireTrainable(options.TrainFile, train, spec);
        }
        else
        {
            SiteProfile profile = SyntheticClinicalCorpus.Profiles.FirstOrDefault(p => p.Name == options.Site)
                ?? SyntheticClinicalCorpus.CreateProfiles(Math.Max(3, SyntheticClinicalCorpus.Profiles.Count + 1))[^1];
            int seed = StableSeed(options.Site);
            train = SyntheticClinicalCorpus.Generate(profile, options.SyntheticSentences, seed);
            dev = SyntheticClinicalCorpus.Generate(profile, Math.Max(50, options.SyntheticSentences / 5), seed + 1);
        }

        train = WithAnnotatedTypes(train, options.ParsedAnnotatedTypes, spec);
        return new TaggerLocalTrainer(spec, train, dev, options.Device, options.LearningRate, options.Seed, options.ParsedOptimizer)
        {
            FreezeEmbeddings = options.DpFreezeEmbeddings,
            DpDropout = options.DpDropout,
        };
    }

    /// <summary>
    /// A site's training file the federation's model can learn from: at least one sentence, and when it tags entities,
    /// at least one of the model's types (a file tagged <c>B-DISEASE</c> for a model of <c>Disease</c> would otherwise
    /// train every mention as O, silently, and spend the site's privacy budget on it). Types outside the model are
    /// allowed beside the model's (they are trained as O, as a site annotating more than the federation needs).
    /// </summary>
    /// <exception cref="ArgumentException">The file has no sentence, or tags no type of the model (as <see cref="WithAnnotatedTypes"/>: the site's data does not fit its settings).</exception>
    internal static void RequireTrainable(string path, IReadOnlyList<Sentence> train, ModelSpec spec)
    {
        if (train.Count == 0)
        {
            throw new ArgumentException($"SecureFed:TrainFile '{path}' has no sentence to train on.");
        }

        string[] tagged = [.. train.SelectMany(s => s.Tags).Where(t => t.Length > 2 && t[1] == '-').Select(t => t[2..])
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        if (tagged.Length > 0 && !tagged.Any(t => spec.EntityTypes.Contains(t, StringComparer.Ordinal)))
        {
            throw new ArgumentException($"SecureFed:TrainFile '{path}' tags {string.Join(", ", tagged)}, none of which the federation's model tags (its types: {string.Join(", ", spec.EntityTypes)}; names are case-sensitive): every mention would be trained as O.");
        }
    }

    /// <summary>
    /// The site's training sentences marked as annotated for <paramref name="annotated"/> only (partial annotation), or
    /// unchanged when null.
    /// </summary>
    /// <exception cref="ArgumentException">A type is not one of the model's, or the data carries a tag of a type outside the list.</exception>
    internal static IReadOnlyList<Sentence> WithAnnotatedTypes(IReadOnlyList<Sentence> train, IReadOnlyList<string>? annotated, ModelSpec spec)
    {
        if (annotated is null)
        {
            return train;
        }

        string[] unknown = [.. annotated.Where(t => !spec.EntityTypes.Contains(t, StringComparer.Ordinal))];
        if (unknown.Length > 0)
        {
            throw new ArgumentException($"SecureFed:AnnotatedTypes names {string.Join(", ", unknown)}, which the federation's model does not tag (its types: {string.Join(", ", spec.EntityTypes)}).");
        }

        string[] unlisted = [.. train.SelectMany(s => s.Tags).Where(t => t.Length > 2 && t[1] == '-').Select(t => t[2..])
            .Where(t => !annotated.Contains(t, StringComparer.Ordinal)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        if (unlisted.Length > 0)
        {
            throw new ArgumentException($"The site's training data tags {string.Join(", ", unlisted)}, which SecureFed:AnnotatedTypes ({string.Join(", ", annotated)}) says this site does not annotate: add them to the list or leave it empty.");
        }

        return [.. train.Select(s => s with { AnnotatedTypes = annotated })];
    }

    private static int StableSeed(string text)
    {
        unchecked
        {
            int h = (int)2166136261;
            foreach (char c in text)
            {
                h = (h ^ c) * 16777619;
            }

            return h & 0x7fffffff;
        }
    }
}
