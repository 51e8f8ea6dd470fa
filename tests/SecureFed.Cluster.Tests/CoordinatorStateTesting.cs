using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Cluster.Lease;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// What the tests of the coordinator's saved rows share (<see cref="CoordinatorModelRowsTests"/>,
/// <see cref="CoordinatorAuditRowsTests"/>): the lease expired by hand, a takeover run to its end, the rows a save
/// wrote with their epochs, and a data directory's contents to prove a refused takeover left it as it was.
/// </summary>
internal static class CoordinatorStateTesting
{
    /// <summary>How long one database call or takeover may take before the test fails.</summary>
    public static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(60);

    public static readonly LeaseTerms Terms = new(TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5));

    /// <summary>Expires the lease, lets <paramref name="holder"/> take it over into its data directory, and lets go.</summary>
    public static async Task TakeOverAsync(NpgsqlDataSource db, PostgresCoordinatorLease lease, string holder, AggregatorOptions options)
    {
        await ExpireAsync(db, lease.Federation);
        ClusterCoordinatorFence fence = await FenceAsync(db, lease, holder, options.DataDirectory);
        await fence.DisposeAsync();
    }

    /// <summary>Takes the lease as <paramref name="holder"/> with the saved state restored into <paramref name="dataDirectory"/>: the fence a coordinator runs under.</summary>
    public static Task<ClusterCoordinatorFence> FenceAsync(NpgsqlDataSource db, PostgresCoordinatorLease lease, string holder, string dataDirectory) =>
        ClusterCoordinatorFence.TakeOverAsync(
            new CoordinatorLeaseKeeper(lease, holder, Terms, TimeProvider.System, NullLogger.Instance), new PostgresCoordinatorState(db, lease), dataDirectory, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);

    /// <summary>The data directory holds exactly <paramref name="before"/>, and no directory was moved aside or left staged beside it.</summary>
    public static void AssertUntouched(string dataDirectory, Dictionary<string, string> before)
    {
        Assert.Equal(before, Contents(dataDirectory));
        string parent = Path.GetDirectoryName(dataDirectory)!;
        string name = Path.GetFileName(dataDirectory);
        Assert.Empty(Directory.GetDirectories(parent, name + ".superseded-*"));
        Assert.Empty(Directory.GetDirectories(parent, name + ".restoring-*"));
    }

    /// <summary>Every file under <paramref name="directory"/> (relative path) with its SHA-256.</summary>
    public static Dictionary<string, string> Contents(string directory) =>
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(directory, f), f => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f))));

    /// <summary>The saved model versions of <paramref name="federation"/> with the epoch that wrote each.</summary>
    public static Task<List<(long Version, long Epoch)>> ModelRowsAsync(NpgsqlDataSource db, string federation) =>
        RowsAsync(db, "SELECT version, epoch FROM securefed_coordinator_models WHERE federation = $1 ORDER BY version", federation);

    /// <summary>The saved audit lines of <paramref name="federation"/> with the epoch that wrote each.</summary>
    public static Task<List<(long Line, long Epoch)>> AuditRowsAsync(NpgsqlDataSource db, string federation) =>
        RowsAsync(db, "SELECT line, epoch FROM securefed_coordinator_audit WHERE federation = $1 ORDER BY line", federation);

    public static Task ExpireAsync(NpgsqlDataSource db, string federation) =>
        ExecuteAsync(db, $"UPDATE securefed_coordinator_lease SET expires_utc = clock_timestamp() WHERE federation = '{federation}'");

    public static async Task ExecuteAsync(NpgsqlDataSource db, string sql)
    {
        await using NpgsqlCommand command = db.CreateCommand(sql);
        await command.ExecuteNonQueryAsync().WaitAsync(WaitLimit);
    }

    private static async Task<List<(long, long)>> RowsAsync(NpgsqlDataSource db, string sql, string federation)
    {
        await using NpgsqlCommand command = db.CreateCommand(sql);
        command.Parameters.Add(new NpgsqlParameter { Value = federation });
        var rows = new List<(long, long)>();
        try
        {
            await using NpgsqlDataReader reader = await command.ExecuteReaderAsync().WaitAsync(WaitLimit);
            while (await reader.ReadAsync())
            {
                rows.Add((reader.GetInt64(0), reader.GetInt64(1)));
            }
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            // no save has created the table yet
        }

        return rows;
    }
}
