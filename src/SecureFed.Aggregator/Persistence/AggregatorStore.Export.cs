using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;

namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// Reading a fused model out of a stopped aggregator's store (<c>securefed aggregator export-model</c>): the only copy of
/// a federation's final model is in the aggregator's database (each agent keeps the model it trained from, one version
/// behind), so an operator needs a way to take it out.
/// </summary>
public sealed partial class AggregatorStore
{
    /// <summary>
    /// Model <paramref name="version"/> (null: the newest) of the stopped aggregator's store at <paramref name="path"/>,
    /// its bytes checked against the stored SHA-256. The store is held exclusively while it is read and never changed.
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="IOException">An aggregator has the store open, or the path is a folder.</exception>
    /// <exception cref="InvalidDataException">The file is not a SecureFed aggregator database, or the model's bytes do not match their digest.</exception>
    /// <exception cref="KeyNotFoundException">No such version (the message names the versions kept), no model at all, or the version's bytes were compacted away.</exception>
    public static (ModelRecord Record, byte[] Bytes) ReadModel(string path, long? version)
    {
        string fullPath = ExistingStorePath(path, "read a model from");
        using SqliteConnection connection = OpenExclusive(fullPath, "read a model from");
        try
        {
            using SqliteCommand range = Command(connection, null, "SELECT min(version), max(version), count(*) FROM models;");
            using (SqliteDataReader reader = range.ExecuteReader())
            {
                reader.Read();
                if (reader.GetInt64(2) == 0)
                {
                    throw new KeyNotFoundException($"The aggregator database '{fullPath}' holds no model yet (the aggregator never started a federation here).");
                }

                long newest = reader.GetInt64(1);
                if (version is long wanted && wanted != newest && Scalar(connection, null, "SELECT 1 FROM models WHERE version = $v;", ("$v", wanted)) is null)
                {
                    throw new KeyNotFoundException(string.Create(CultureInfo.InvariantCulture,
                        $"The aggregator database '{fullPath}' keeps no model version {wanted}; it keeps {reader.GetInt64(2)} version(s) from {reader.GetInt64(0)} to {newest} (the newest is the fused model after the last completed round)."));
                }

                version ??= newest;
            }

            using SqliteCommand cmd = Command(connection, null, "SELECT version, round, sha256, size_bytes, created_utc, bytes FROM models WHERE version = $v;", ("$v", version.Value));
            using SqliteDataReader row = cmd.ExecuteReader();
            row.Read();
            var record = new ModelRecord(row.GetInt64(0), row.IsDBNull(1) ? 0 : row.GetInt64(1), row.GetString(2), row.GetInt64(3), ParseTime(row.GetString(4)));
            byte[] bytes = row.GetFieldValue<byte[]>(5);
            if (bytes.Length != record.SizeBytes)
            {
                throw new KeyNotFoundException(string.Create(CultureInfo.InvariantCulture,
                    $"Model version {record.Version} in '{fullPath}' has {bytes.Length} of its {record.SizeBytes} bytes stored (a row restored from a cluster snapshot without its model bytes); export another version, or from the silo that holds it."));
            }

            string actual = Convert.ToHexStringLower(SHA256.HashData(bytes));
            if (!string.Equals(actual, record.Sha256, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"Model version {record.Version} in '{fullPath}' is corrupt: its recorded SHA-256 is {record.Sha256} but the stored bytes hash to {actual}.");
            }

            return (record, bytes);
        }
        catch (SqliteException ex)
        {
            throw Translate(ex, fullPath);
        }
    }
}
