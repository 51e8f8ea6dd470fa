using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Orleans.Configuration;
using Orleans.Storage;
using Orleans.Runtime.Placement;
using SecureFed.Cluster.Diagnostics;
using SecureFed.Cluster.Membership;
using SecureFed.Cluster.Placement;
using SecureFed.Cluster.Storage;

namespace SecureFed.Cluster;

/// <summary>Registers the SecureFed cluster's grains' needs on a silo.</summary>
public static class SiloBuilderExtensions
{
    /// <summary>The ADO.NET provider invariant name Orleans loads Npgsql by.</summary>
    internal const string AdoNetInvariant = "Npgsql";

    /// <summary>
    /// Adds the slice and per-silo placements, a <see cref="TimeProvider"/>, the silo's message-byte counter and its slice
    /// spill directory under <paramref name="spillDirectory"/> (<c>SecureFed:Cluster:SpillDirectory</c>; null or empty: the
    /// default under <c>TMPDIR</c>), cleaned at start-up and removed at a stop. Grain storage named "securefed" (the ledger)
    /// must be added by the host: ADO.NET on PostgreSQL in production, memory in tests.
    /// </summary>
    public static ISiloBuilder AddSecureFedCluster(this ISiloBuilder builder, string? spillDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddPlacementDirector<SlicePlacementStrategy, SlicePlacementDirector>();
        builder.Services.AddPlacementDirector<SiloPlacementStrategy, SiloPlacementDirector>();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<SiloTraffic>();
        builder.Services.AddSingleton<Front.SiloAgentEndpoint>();
        builder.Services.AddHostedService(services => services.GetRequiredService<SiloTraffic>());
        builder.Services.AddSingleton(services => new Grains.SliceSpillStore(services.GetRequiredService<ILocalSiloDetails>(), spillDirectory));
        builder.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, Grains.SliceSpillCleanup>();
        return builder;
    }

    /// <summary>Adds the "securefed" grain storage on PostgreSQL (<paramref name="connectionString"/>, Npgsql).</summary>
    public static ISiloBuilder AddSecureFedPostgresStorage(this ISiloBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        builder.Services.AddKeyedSingleton<IGrainStorage>(Grains.LedgerGrain.StorageName, (services, _) =>
            new PostgresGrainStorage(NpgsqlDataSource.Create(connectionString), services.GetRequiredService<Orleans.Serialization.Serializer>()));
        return builder;
    }

    /// <summary>
    /// Keeps the cluster's membership in PostgreSQL (<paramref name="connectionString"/>, Npgsql): Orleans' ADO.NET
    /// clustering, whose tables (<c>OrleansMembershipVersionTable</c>, <c>OrleansMembershipTable</c>, <c>OrleansQuery</c>)
    /// the silo creates on start when the database lacks them (<see cref="PostgresClusteringSchema"/>: once, under an
    /// advisory lock, so silos may start together). Any silo can start or die in any order; no silo is special.
    /// </summary>
    public static ISiloBuilder AddSecureFedPostgresClustering(this ISiloBuilder builder, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        builder.UseAdoNetClustering(o =>
        {
            o.Invariant = AdoNetInvariant;
            o.ConnectionString = connectionString;
        });
        builder.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(services =>
            new PostgresClusteringSchemaInstaller(connectionString, services.GetRequiredService<ILogger<PostgresClusteringSchemaInstaller>>()));
        return builder;
    }
}
