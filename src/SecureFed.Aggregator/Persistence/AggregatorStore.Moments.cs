using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;

namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// The server update rule's moments as bytes, for the aggregator cluster's coordinator: it saves them apart from the
/// round store (<see cref="SnapshotWithoutModelBytesTo"/> leaves them out, as it leaves out model bytes), once per model
/// version, and a successor writes them back into the restored store before it opens it.
/// </summary>
public sealed partial class AggregatorStore
{
    /// <summary>The server_optimizer row of a snapshot without bytes: everything but the two moments.</summary>
    private const string ServerOptimizerWithoutBytesSql =
        "INSERT INTO snapshot.server_optimizer (model_version, kind, steps, parameter_count, first, second) SELECT model_version, kind, steps, parameter_count, x'', x'' FROM main.server_optimizer;";

    /// <summary>
    /// The saved server-optimizer state without its moments (model version, rule, steps, parameter count, the moments'
    /// sizes), or null when none is saved; nothing of the moments is read.
    /// </summary>
    /// <exception cref="InvalidDataException">More than one model version's state is saved.</exception>
    public ServerOptimizerRecord? ServerOptimizerMetadata() => Run(() =>
    {
        using SqliteCommand cmd = Command(_connection, null, "SELECT model_version, kind, steps, parameter_count, length(first), length(second) FROM server_optimizer ORDER BY model_version;");
        using SqliteDataReader reader = cmd.ExecuteReader();
        var rows = new List<ServerOptimizerRecord>();
        while (reader.Read())
        {
            rows.Add(new ServerOptimizerRecord(reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5)));
        }

        return rows.Count switch
        {
            0 => null,
            1 => rows[0],
            _ => throw new InvalidDataException($"'{Path}' holds the server optimizer's state of {rows.Count} model versions; only the latest one's is kept."),
        };
    });

    /// <summary>
    /// Opens the moments saved with model <paramref name="version"/> as one read-only, seekable stream: the first moment's
    /// bytes then the second's (little-endian doubles, as stored), by incremental blob I/O on a connection of its own. The
    /// caller disposes it.
    /// </summary>
    /// <exception cref="InvalidOperationException">No moments are saved with that version, or their bytes are not in this database.</exception>
    public Stream OpenServerOptimizer(long version)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var builder = new SqliteConnectionStringBuilder { DataSource = Path, Mode = SqliteOpenMode.ReadOnly, Pooling = false, DefaultTimeout = 30 };
        var connection = new SqliteConnection(builder.ConnectionString);
        SqliteBlob? first = null;
        try
        {
            connection.Open();
            Execute(connection, null, StreamingReadPragmas);
            object? complete = Scalar(connection, null, "SELECT length(first) = parameter_count * 8 FROM server_optimizer WHERE model_version = $v;", ("$v", version));
            if (complete is not long flag || flag == 0)
            {
                throw new InvalidOperationException(complete is null
                    ? $"No server optimizer moments are saved with model version {version} in '{Path}'."
                    : $"The server optimizer moments of model version {version} are not in '{Path}' (a snapshot without them).");
            }

            first = new SqliteBlob(connection, "server_optimizer", "first", version, readOnly: true);
            return new MomentsBlobStream(connection, first, new SqliteBlob(connection, "server_optimizer", "second", version, readOnly: true), Path);
        }
        catch (SqliteException ex)
        {
            first?.Dispose();
            connection.Dispose();
            throw Translate(ex, Path);
        }
        catch
        {
            first?.Dispose();
            connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes back the moments of <paramref name="expected"/>'s model version into a store restored without them
    /// (<see cref="SnapshotWithoutModelBytesTo"/>): the saved row must be that version with the same rule, steps and
    /// parameter count, and <paramref name="source"/> must hold exactly <paramref name="expected"/>'s
    /// <see cref="ServerOptimizerRecord.FirstBytes"/> then <see cref="ServerOptimizerRecord.SecondBytes"/> bytes hashing to
    /// <paramref name="sha256"/>; read a block at a time, never whole. Otherwise nothing is written.
    /// </summary>
    /// <exception cref="InvalidOperationException">No such row, or it already holds its moments.</exception>
    /// <exception cref="InvalidDataException">The row's rule, steps or parameter count differ, the sizes do not fit the
    /// parameter count, or the bytes are short, long or do not hash to <paramref name="sha256"/> (the message says which).</exception>
    public void WriteServerOptimizerBytes(ServerOptimizerRecord expected, string sha256, Stream source)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentException.ThrowIfNullOrWhiteSpace(sha256);
        ArgumentNullException.ThrowIfNull(source);
        Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            ServerOptimizerRecord? row = null;
            using (SqliteCommand cmd = Command(_connection, tx, "SELECT model_version, kind, steps, parameter_count, length(first), length(second) FROM server_optimizer WHERE model_version = $v;", ("$v", expected.ModelVersion)))
            using (SqliteDataReader reader = cmd.ExecuteReader())
            {
                if (reader.Read())
                {
                    row = new ServerOptimizerRecord(reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5));
                }
            }

            string version = expected.ModelVersion.ToString(CultureInfo.InvariantCulture);
            if (row is null)
            {
                throw new InvalidOperationException($"Cannot write the server optimizer moments of model version {version}: '{Path}' saves none with that version.");
            }

            if (row.FirstBytes != 0 || row.SecondBytes != 0)
            {
                throw new InvalidOperationException($"Cannot write the server optimizer moments of model version {version}: '{Path}' already holds them.");
            }

            if (row.Kind != expected.Kind || row.Steps != expected.Steps || row.ParameterCount != expected.ParameterCount)
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"the moments given for model version {version} are {expected.Kind} after {expected.Steps} steps for {expected.ParameterCount} parameters, but '{Path}' saves {row.Kind} after {row.Steps} steps for {row.ParameterCount} parameters with that version; nothing was written"));
            }

            long size = expected.ParameterCount * sizeof(double);
            if (expected.FirstBytes != size || (expected.SecondBytes != 0 && expected.SecondBytes != size))
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"the moments given for model version {version} have {expected.FirstBytes} and {expected.SecondBytes} bytes, which do not fit {expected.ParameterCount} parameters; nothing was written"));
            }

            Execute(_connection, tx, "UPDATE server_optimizer SET first = zeroblob($first), second = zeroblob($second) WHERE model_version = $v;",
                ("$first", expected.FirstBytes), ("$second", expected.SecondBytes), ("$v", expected.ModelVersion));
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = ArrayPool<byte>.Shared.Rent(ModelCopyBlock);
            try
            {
                Copy("first", expected.FirstBytes);
                Copy("second", expected.SecondBytes);
                if (source.Read(buffer, 0, 1) > 0)
                {
                    throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                        $"the moments given for model version {version} are longer than {expected.Bytes} bytes; nothing was written"));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            string actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (!string.Equals(actual, sha256, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"the moments given for model version {version} hash to SHA-256 {actual}, not their recorded {sha256}; nothing was written");
            }

            tx.Commit();

            void Copy(string column, long bytes)
            {
                if (bytes == 0)
                {
                    return;
                }

                using var blob = new SqliteBlob(_connection, "server_optimizer", column, expected.ModelVersion); // model_version is the rowid
                long written = 0;
                while (written < bytes)
                {
                    int read = source.Read(buffer, 0, (int)Math.Min(ModelCopyBlock, bytes - written));
                    if (read == 0)
                    {
                        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                            $"the moments given for model version {version} end after {(column == "first" ? 0 : expected.FirstBytes) + written} of {expected.Bytes} bytes; nothing was written"));
                    }

                    blob.Write(buffer, 0, read);
                    hash.AppendData(buffer, 0, read);
                    written += read;
                }
            }
        });
    }
}
