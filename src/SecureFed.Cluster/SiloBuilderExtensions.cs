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
    /// Entries in each silo's cache of grain locations (Orleans' <see cref="GrainDirectoryOptions.CacheSize"/>). A round calls
    /// one round grain and one grain per slice, plus the ledger and each silo's stats grain, so a few thousand entries hold
    /// every grain of the last hundreds of rounds; an older entry is looked up in the grain directory again. Orleans'
    /// default, 1,000,000 entries, allocates two 4.65 MB arrays in every silo at start-up (9.3 MB of the 24.6 MB GC heap
    /// of an idle silo, measured with dotnet-gcdump; mostly never written, so the resident memory fell by only 0-9 MiB,
    /// docs/benchmarks.md runs 40-41).
    /// </summary>
    public const int DirectoryCacheSize = 4096;

    /// <summary>
    /// Adds the slice and per-silo placements, a <see cref="TimeProvider"/>, the silo's message-byte counter, the rounds whose
    /// slices it opened (<see cref="Front.SiloRounds"/>, for its front), how long a round grain stays after its round ended
    /// (<see cref="Grains.RoundGrainOptions"/>) and its slice
    /// spill directory under <paramref name="spillDirectory"/> (<c>SecureFed:Cluster:SpillDirectory</c>; null or empty: the
    /// default under <c>TMPDIR</c>), cleaned at start-up and removed at a stop. Grain storage named "securefed" (the ledger)
    /// must be added by the host: ADO.NET on PostgreSQL in production, memory in tests.
    /// </summary>
    public static ISiloBuilder AddSecureFedCluster(this ISiloBuilder builder, string? spillDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Configure<GrainDirectoryOptions>(o => o.CacheSize = DirectoryCacheSize);
        builder.Services.AddPlacementDirector<SlicePlacementStrategy, SlicePlacementDirector>();
        builder.Services.AddPlacementDirector<SiloPlacementStrategy, SiloPlacementDirector>();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<SiloTraffic>();
        builder.Services.AddSingleton<Front.SiloAgentEndpoint>();
        builder.Services.AddSingleton<Front.SiloRounds>();
        builder.Services.AddSingleton(new Grains.RoundGrainOptions());
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
