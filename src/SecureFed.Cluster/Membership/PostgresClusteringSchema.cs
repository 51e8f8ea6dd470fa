using System.Reflection;
using Npgsql;
using NpgsqlTypes;

namespace SecureFed.Cluster.Membership;

/// <summary>
/// Puts Orleans' ADO.NET clustering schema (the vendored <c>PostgreSQL-Main.sql</c> and <c>PostgreSQL-Clustering.sql</c>,
/// Membership/Sql/README.md) into a PostgreSQL database, once. The scripts are not idempotent (plain CREATE TABLE,
/// CREATE FUNCTION, INSERT), so they run in one transaction that first takes a transaction-scoped advisory lock
/// (<see cref="AdvisoryLockKey"/>) and then looks at what exists: silos starting together on an empty database queue on
/// the lock, the first creates the schema and commits, the others find it and create nothing. A failure rolls the
/// whole transaction back, so the database never holds half a schema.
/// </summary>
internal static class PostgresClusteringSchema
{
    /// <summary>
    /// The advisory lock every SecureFed silo takes (transaction-scoped) before changing the schema of the cluster's
    /// database: the Orleans clustering tables here and the grain-state table of <see cref="Storage.PostgresGrainStorage"/>.
    /// </summary>
    public const long AdvisoryLockKey = 0x5365_6375_7265_4664; // "SecureFd"

    /// <summary>The stored queries Microsoft.Orleans.Clustering.AdoNet 10.4.2 reads from table OrleansQuery.</summary>
    public static IReadOnlyList<string> RequiredQueryKeys { get; } =
    [
        "UpdateIAmAlivetimeKey", "InsertMembershipVersionKey", "InsertMembershipKey", "UpdateMembershipKey",
        "MembershipReadRowKey", "MembershipReadAllKey", "DeleteMembershipTableEntriesKey", "GatewaysQueryKey",
        "CleanupDefunctSiloEntriesKey",
    ];

    /// <summary>
    /// Creates what is missing of the schema; returns true when this call created something, false when the database
    /// already had it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The schema could not be created, or the database holds an Orleans
    /// query table without the clustering queries this version needs (the message names them).</exception>
    public static async Task<bool> EnsureAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        NpgsqlConnection connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                await LockAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                bool hasQueries = await ExistsAsync(connection, transaction, "orleansquery", cancellationToken).ConfigureAwait(false);
                bool hasMembership = await ExistsAsync(connection, transaction, "orleansmembershiptable", cancellationToken).ConfigureAwait(false);
                try
                {
                    if (!hasQueries)
                    {
                        await RunScriptAsync(connection, transaction, "PostgreSQL-Main.sql", cancellationToken).ConfigureAwait(false);
                    }

                    if (!hasMembership)
                    {
                        await RunScriptAsync(connection, transaction, "PostgreSQL-Clustering.sql", cancellationToken).ConfigureAwait(false);
                    }
                }
                catch (PostgresException ex)
                {
                    throw new InvalidOperationException(
                        $"creating the Orleans clustering schema in database '{connection.Database}' failed (nothing was changed): {ex.MessageText}", ex);
                }

                IReadOnlyList<string> missing = await MissingQueriesAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                if (missing.Count > 0)
                {
                    throw new InvalidOperationException(
                        $"database '{connection.Database}' has Orleans' table OrleansQuery without the clustering queries {string.Join(", ", missing)} " +
                        "(an older or partial Orleans script?); apply Orleans' PostgreSQL clustering migrations or use an empty database");
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                return !hasQueries || !hasMembership;
            }
        }
    }

    /// <summary>Runs the idempotent DDL <paramref name="schema"/> in one transaction under the schema lock (<see cref="LockAsync"/>).</summary>
    public static async Task CreateUnderLockAsync(NpgsqlDataSource dataSource, string schema, CancellationToken cancellationToken)
    {
        NpgsqlConnection connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            NpgsqlTransaction transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                await LockAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
                await using var command = new NpgsqlCommand(schema, connection, transaction);
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Takes <see cref="AdvisoryLockKey"/> until the end of <paramref name="transaction"/>.</summary>
    public static async Task LockAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock($1)", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = AdvisoryLockKey, NpgsqlDbType = NpgsqlDbType.Bigint });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The text of a vendored script (an embedded resource).</summary>
    public static string Script(string name)
    {
        using Stream stream = typeof(PostgresClusteringSchema).Assembly.GetManifestResourceStream("SecureFed.Cluster.Membership.Sql." + name)
            ?? throw new InvalidOperationException($"the embedded Orleans script {name} is missing from {typeof(PostgresClusteringSchema).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static async Task<bool> ExistsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = table, NpgsqlDbType = NpgsqlDbType.Text });
        return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    private static async Task RunScriptAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string name, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(Script(name), connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<IReadOnlyList<string>> MissingQueriesAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT querykey FROM orleansquery WHERE querykey = ANY($1)", connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = RequiredQueryKeys.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        var present = new HashSet<string>(StringComparer.Ordinal);
        await using (NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                present.Add(reader.GetString(0));
            }
        }

        return [.. RequiredQueryKeys.Where(k => !present.Contains(k))];
    }
}
