using System.Data;
using System.Globalization;
using System.Security.Cryptography;
using Npgsql;
using NpgsqlTypes;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The coordinator's audit log (<c>audit/audit.jsonl</c>) as append-only rows of table <c>securefed_coordinator_audit</c>:
/// one row per line, keyed by its 1-based number, with its byte offset in the file, its bytes (newline included), the
/// lease epoch that wrote it, and a running hash, SHA-256(previous line's running hash || bytes), the first line's
/// previous hash being 32 zero bytes. A row changed, removed or reordered breaks the running hash of every line after it.
/// The rows are written inside <see cref="PostgresCoordinatorState"/>'s fenced transactions, only the lines the database
/// does not hold yet.
/// </summary>
internal static class CoordinatorAuditRows
{
    /// <summary>The table, idempotent.</summary>
    public const string Schema = """
        CREATE TABLE IF NOT EXISTS securefed_coordinator_audit (
            federation text NOT NULL,
            line bigint NOT NULL CHECK (line > 0),
            byte_offset bigint NOT NULL CHECK (byte_offset >= 0),
            epoch bigint NOT NULL,
            bytes bytea NOT NULL,
            chain bytea NOT NULL,
            saved_utc timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (federation, line)
        );
        """;

    /// <summary>The end of the saved log: nothing saved.</summary>
    public static readonly Head Empty = new(0, 0, new string('0', 2 * SHA256.HashSizeInBytes));

    /// <summary>The running hash of a line that follows <paramref name="previous"/>.</summary>
    public static byte[] NextChain(ReadOnlySpan<byte> previous, ReadOnlySpan<byte> line)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(previous);
        hash.AppendData(line);
        return hash.GetHashAndReset();
    }

    /// <summary>The last saved line of <paramref name="federation"/> (<see cref="Empty"/> when none), inside <paramref name="transaction"/>.</summary>
    public static async Task<Head> ReadHeadAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string federation, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "SELECT line, byte_offset + octet_length(bytes), chain FROM securefed_coordinator_audit WHERE federation = $1 ORDER BY line DESC LIMIT 1",
            connection,
            transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = federation, NpgsqlDbType = NpgsqlDbType.Text });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new Head(reader.GetInt64(0), reader.GetInt64(1), Convert.ToHexStringLower(reader.GetFieldValue<byte[]>(2)))
            : Empty;
    }

    /// <summary>The end of the first <paramref name="lines"/> lines of the local log at <paramref name="logPath"/>.</summary>
    /// <exception cref="InvalidDataException">The local log holds fewer complete lines.</exception>
    public static Head LocalPrefix(string logPath, long lines)
    {
        if (lines == 0)
        {
            return Empty;
        }

        byte[] chain = new byte[SHA256.HashSizeInBytes];
        long count = 0;
        long offset = 0;
        using (FileStream stream = OpenShared(logPath))
        {
            var line = new MemoryStream();
            int b;
            while (count < lines && (b = stream.ReadByte()) >= 0)
            {
                line.WriteByte((byte)b);
                if (b == '\n')
                {
                    chain = NextChain(chain, line.GetBuffer().AsSpan(0, (int)line.Length));
                    offset += line.Length;
                    count++;
                    line.SetLength(0);
                }
            }
        }

        if (count < lines)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"the local audit log {logPath} holds {count} complete lines, but the cluster's database already holds {lines} of this coordinator's audit lines: this data directory is not the state that was saved; nothing was saved"));
        }

        return new Head(lines, offset, Convert.ToHexStringLower(chain));
    }

    /// <summary>
    /// The complete lines of the local log after <paramref name="from"/> (a line being appended meanwhile, without its
    /// newline yet, is left for the next save), each with its number, offset and running hash.
    /// </summary>
    public static List<Row> ReadNew(string logPath, Head from)
    {
        byte[] tail;
        using (FileStream stream = OpenShared(logPath))
        {
            if (stream.Length < from.Offset)
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"the local audit log {logPath} is {stream.Length} bytes, shorter than the {from.Offset} bytes already saved to the cluster's database: it was truncated or replaced; nothing was saved"));
            }

            stream.Position = from.Offset;
            tail = new byte[stream.Length - from.Offset];
            stream.ReadExactly(tail);
        }

        var rows = new List<Row>();
        byte[] chain = Convert.FromHexString(from.Chain);
        int start = 0;
        for (int end = Array.IndexOf(tail, (byte)'\n'); end >= 0; end = Array.IndexOf(tail, (byte)'\n', start))
        {
            byte[] line = tail[start..(end + 1)];
            chain = NextChain(chain, line);
            rows.Add(new Row(from.Lines + rows.Count + 1, from.Offset + start, line, chain));
            start = end + 1;
        }

        return rows;
    }

    /// <summary>Appends <paramref name="rows"/> (one statement) inside the fenced <paramref name="transaction"/>.</summary>
    public static async Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string federation, long epoch, IReadOnlyList<Row> rows, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            INSERT INTO securefed_coordinator_audit (federation, line, byte_offset, epoch, bytes, chain)
            SELECT $1, t.line, t.byte_offset, $2, t.bytes, t.chain FROM unnest($3::bigint[], $4::bigint[], $5::bytea[], $6::bytea[]) AS t(line, byte_offset, bytes, chain)
            """,
            connection,
            transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = federation, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = epoch, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Line).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Offset).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Bytes).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
        command.Parameters.Add(new NpgsqlParameter { Value = rows.Select(r => r.Chain).ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes every saved line of <paramref name="federation"/> to <paramref name="destination"/>, in order, checking as
    /// it goes that no line is missing, each is one line at the offset where the previous ended, and each running hash
    /// matches. Returns the end of what was written (<see cref="Empty"/> when nothing was saved).
    /// </summary>
    /// <exception cref="InvalidDataException">A line is missing or corrupt (the message names it); what was written is incomplete.</exception>
    public static async Task<Head> CopyToAsync(NpgsqlDataSource dataSource, string federation, Stream destination, CancellationToken cancellationToken)
    {
        await using NpgsqlCommand command = dataSource.CreateCommand(
            "SELECT line, byte_offset, bytes, chain FROM securefed_coordinator_audit WHERE federation = $1 ORDER BY line");
        command.Parameters.Add(new NpgsqlParameter { Value = federation, NpgsqlDbType = NpgsqlDbType.Text });
        await using NpgsqlDataReader reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken).ConfigureAwait(false);
        byte[] chain = new byte[SHA256.HashSizeInBytes];
        long expected = 1;
        long offset = 0;
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            long line = reader.GetInt64(0);
            long at = reader.GetInt64(1);
            byte[] bytes = reader.GetFieldValue<byte[]>(2);
            byte[] stored = reader.GetFieldValue<byte[]>(3);
            if (line != expected)
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"audit line {expected} of federation '{federation}' is missing from the cluster's database (table securefed_coordinator_audit): the next saved line is {line}"));
            }

            string? problem = at != offset
                ? string.Create(CultureInfo.InvariantCulture, $"its byte offset is {at}, but the lines before it end at {offset}")
                : bytes.Length == 0 || bytes[^1] != '\n' || Array.IndexOf(bytes, (byte)'\n') != bytes.Length - 1
                    ? "its bytes are not one line ending in a newline"
                    : null;
            chain = NextChain(chain, bytes);
            if (problem is null && !CryptographicOperations.FixedTimeEquals(chain, stored))
            {
                problem = "its running SHA-256 does not match its bytes and the lines before it";
            }

            if (problem is not null)
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"audit line {line} of federation '{federation}' in the cluster's database (table securefed_coordinator_audit) is corrupt: {problem}"));
            }

            await destination.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
            offset += bytes.Length;
            expected++;
        }

        return new Head(expected - 1, offset, Convert.ToHexStringLower(chain));
    }

    // The audit log's writer appends to the file while it is read here.
    private static FileStream OpenShared(string path) => new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

    /// <summary>The end of a saved (or local) log: its line count, its length in bytes, and the last line's running hash (hex).</summary>
    internal readonly record struct Head(long Lines, long Offset, string Chain);

    /// <summary>One line to save.</summary>
    internal readonly record struct Row(long Line, long Offset, byte[] Bytes, byte[] Chain);
}
