using Microsoft.Extensions.Logging;
using Npgsql;

namespace SecureFed.Cluster.Membership;

/// <summary>
/// Makes sure the cluster's PostgreSQL database has Orleans' clustering schema before the silo's membership starts
/// (<see cref="PostgresClusteringSchema.EnsureAsync"/>, at <see cref="ServiceLifecycleStage.RuntimeInitialize"/>; the
/// membership table is first read at <see cref="ServiceLifecycleStage.RuntimeGrainServices"/>). A failure stops the silo's
/// start with the reason.
/// </summary>
internal sealed partial class PostgresClusteringSchemaInstaller : ILifecycleParticipant<ISiloLifecycle>
{
    private readonly string _connectionString;
    private readonly ILogger<PostgresClusteringSchemaInstaller> _logger;

    public PostgresClusteringSchemaInstaller(string connectionString, ILogger<PostgresClusteringSchemaInstaller> logger)
    {
        _connectionString = connectionString;
        _logger = logger;
    }

    public void Participate(ISiloLifecycle lifecycle)
    {
        ArgumentNullException.ThrowIfNull(lifecycle);
        lifecycle.Subscribe(nameof(PostgresClusteringSchemaInstaller), ServiceLifecycleStage.RuntimeInitialize, StartAsync);
    }

    private async Task StartAsync(CancellationToken cancellationToken)
    {
        NpgsqlDataSource dataSource = NpgsqlDataSource.Create(_connectionString);
        await using (dataSource.ConfigureAwait(false))
        {
            bool created = await PostgresClusteringSchema.EnsureAsync(dataSource, cancellationToken).ConfigureAwait(false);
            var builder = new NpgsqlConnectionStringBuilder(_connectionString);
            if (created)
            {
                Log.Created(_logger, builder.Database ?? "", builder.Host ?? "");
            }
            else
            {
                Log.Present(_logger, builder.Database ?? "", builder.Host ?? "");
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Created Orleans' clustering schema (membership tables) in database {Database} on {Host}")]
        public static partial void Created(ILogger logger, string database, string host);

        [LoggerMessage(2, LogLevel.Debug, "Orleans' clustering schema is present in database {Database} on {Host}")]
        public static partial void Present(ILogger logger, string database, string host);
    }
}
