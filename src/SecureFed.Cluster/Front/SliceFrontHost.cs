using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Federation;

namespace SecureFed.Cluster.Front;

/// <summary>
/// Kestrel for a slice silo (not the coordinator): HTTPS with mandatory client certificates of the federation CA, the
/// aggregator's TLS certificate (the same kit as the coordinator's), the per-site bounds on open connections
/// (<see cref="ConnectionGate"/>) and on calls in flight, ShareKeys/Unmask ones apart (<see cref="BulkCallGate"/>), the per-site bound
/// on refusal lines (<see cref="FrontRefusalLog"/>), and <see cref="SiloFrontService"/>: slice uploads
/// taken here, every other call forwarded to the coordinator when <see cref="SliceFront.Coordinator"/> is set
/// (docs/cluster.md §6).
/// </summary>
public static class SliceFrontHost
{
    /// <summary>Builds the host listening on <paramref name="listen"/> (https://address:port; port 0 picks one).</summary>
    public static WebApplication Build(Uri listen, SliceFront front, Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(front);
        PartyKit kit = front.Kit;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = AggregatorHost.FrameworkLogLevels }); // below appsettings.json and environment variables
        configureLogging?.Invoke(builder.Logging);
        var connections = new ConnectionGate(front.MaxConnectionsPerSite);
        builder.Services.AddSingleton(connections);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            AgentListener.Listen(kestrel, listen, kit, connections);
        });
        builder.Services.AddSingleton(front);
        var bulkCalls = new BulkCallGate(front.MaxBulkCallsPerSite, front.MaxCallsPerSite);
        builder.Services.AddSingleton(bulkCalls);
        // The front's refusal lines, bounded per site (disposed with the host: the pending summaries are logged then).
        builder.Services.AddSingleton(services => new FrontRefusalLog(services.GetRequiredService<ILoggerFactory>().CreateLogger<SiloFrontService>(), front.Time));
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = AggregatorHost.MaxMessageBytes;
            grpc.MaxSendMessageSize = AggregatorHost.MaxMessageBytes;
        });
        WebApplication app = builder.Build();
        // After routing, as the coordinator's (the gate knows a call by its routed gRPC method, however its path is cased):
        // a site's calls over MaxCallsPerSite, and its ShareKeys/Unmask calls over MaxBulkCallsPerSite, are refused before their
        // bodies are read (and before they are forwarded),
        // and logged within the site's share of the front's refusal lines.
        app.UseRouting();
        FrontRefusalLog refusals = app.Services.GetRequiredService<FrontRefusalLog>();
        BulkCallGate.UseBulkCallGate(app, bulkCalls, kit.Manifest, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<BulkCallGate>(),
            (caller, code, _, _) => refusals.MayLog(caller.Caller, code.ToString()));
        app.MapGrpcService<SiloFrontService>();
        return app;
    }

    /// <summary>The https:// address Kestrel bound (after start; resolves port 0).</summary>
    public static Uri BoundAddress(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
    }
}
