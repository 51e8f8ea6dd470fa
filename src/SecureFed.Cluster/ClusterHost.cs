using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using SecureFed.Federation;

namespace SecureFed.Cluster;

/// <summary>Builds one silo of the aggregator cluster as a generic host, from the validated cluster section.</summary>
public static class ClusterHost
{
    /// <summary>The Orleans service id of every SecureFed aggregator cluster.</summary>
    public const string ServiceId = "securefed-aggregator";

    /// <summary>
    /// A silo host for <paramref name="federation"/> (its cluster id): endpoints from <paramref name="options"/>, the
    /// round ledger and the cluster's membership in PostgreSQL (<see cref="AggregatorClusterOptions.ConnectionString"/>; Orleans'
    /// ADO.NET clustering, its tables created on start when missing), so silos may start and die in any order.
    /// </summary>
    /// <param name="federation">The federation (the cluster id).</param>
    /// <param name="options">The validated cluster section.</param>
    /// <param name="kit">The aggregator's kit: required with mutual <see cref="AggregatorClusterOptions.Tls"/> (its certificate
    /// secures the silo and gateway ports, <see cref="ClusterTls"/>), ignored with <c>off</c>.</param>
    /// <exception cref="ArgumentException">The options are not valid; the message lists every problem.</exception>
    public static IHost BuildSilo(string federation, AggregatorClusterOptions options, PartyKit? kit)
    {
        ArgumentException.ThrowIfNullOrEmpty(federation);
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<string> problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid cluster configuration:\n  " + string.Join("\n  ", problems), nameof(options));
        }

        if (options.MutualTls && kit is null)
        {
            throw new ArgumentException($"{AggregatorClusterOptions.Section}:Tls is '{ClusterTls.Mutual}': the silo needs the aggregator's kit for its certificate.", nameof(kit));
        }

        ILoggerFactory? loggers = null;

        IPAddress address = IPAddress.Parse(options.AdvertisedAddress);
        HostApplicationBuilder builder = Host.CreateApplicationBuilder();
        builder.UseOrleans(silo =>
        {
            silo.AddSecureFedPostgresClustering(options.ConnectionString);
            silo.ConfigureEndpoints(address, options.SiloPort, options.GatewayPort, listenOnAnyHostAddress: false);
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = federation;
                o.ServiceId = ServiceId;
            });
            silo.Configure<ClusterMembershipOptions>(options.ApplyMembership);
            silo.AddSecureFedCluster(options.SpillDirectory);
            silo.AddSecureFedPostgresStorage(options.ConnectionString);
            if (options.MutualTls)
            {
                silo.UseTls(kit!.TlsCertificate, tls => ClusterTls.Configure(tls, kit, () => loggers?.CreateLogger("SecureFed.Cluster.Tls") ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));
            }
        });
        IHost host = builder.Build();
        loggers = host.Services.GetRequiredService<ILoggerFactory>();
        return host;
    }
}
