using System.Net;
using System.Security.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
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
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = new AggregatorOptions();
        configuration.GetSection(AggregatorOptions.Section).Bind(options);
        IReadOnlyList<string> problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new OptionsValidationException(AggregatorOptions.Section, typeof(AggregatorOptions), problems);
        }

        AggregatorState state = AggregatorState.Open(options, initialModelFactory);
        try
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Configuration.AddConfiguration(configuration);
            if (configureLogging is not null)
            {
                configureLogging(builder.Logging);
            }

            var listen = new Uri(options.Listen);
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.Limits.MaxRequestBodySize = null; // streams are bounded per message by gRPC
                IPAddress address = listen.Host is "localhost" ? IPAddress.Loopback
                    : IPAddress.TryParse(listen.Host, out IPAddress? ip) ? ip : IPAddress.Any;
                kestrel.Listen(address, listen.Port, endpoint =>
                {
                    endpoint.Protocols = HttpProtocols.Http2;
                    endpoint.UseHttps(new HttpsConnectionAdapterOptions
                    {
                        ServerCertificate = state.Kit.TlsCertificate,
                        ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                        SslProtocols = SslProtocols.Tls13 | SslProtocols.Tls12,
                        ClientCertificateValidation = (certificate, _, _) => PeerTrust.ValidateChain(certificate, state.Kit.CaCertificate, out _),
                    });
                });
            });

            builder.Services.AddSingleton(state);
            builder.Services.AddSingleton(Options.Create(options));
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddSingleton(new UploadLimiter(options.MaxConcurrentUploads));
            builder.Services.AddSingleton<RoundCoordinator>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<RoundCoordinator>());
            builder.Services.AddGrpc(grpc =>
            {
                grpc.MaxReceiveMessageSize = MaxMessageBytes;
                grpc.MaxSendMessageSize = MaxMessageBytes;
                grpc.EnableDetailedErrors = true;
            });
            builder.Services.AddGrpcHealthChecks().AddCheck("aggregator", () => HealthCheckResult.Healthy("accepting rounds"));
            WebApplication app = builder.Build();
            app.MapGrpcService<AggregationService>();
            app.MapGrpcHealthChecksService();
            app.Lifetime.ApplicationStopped.Register(state.Dispose);
            return app;
        }
        catch
        {
            state.Dispose();
            throw;
        }
    }

    /// <summary>The address Kestrel actually bound (after start; resolves port 0).</summary>
    public static Uri BoundAddress(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
    }
}
