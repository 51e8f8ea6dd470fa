using Microsoft.Data.Sqlite;

namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// The database file's size. A new store uses SQLite's incremental auto-vacuum, so the pages that deleted model versions
/// (<c>SecureFed:KeepModelVersions</c>) leave free can be given back to the file system (<see cref="ReleaseFreePages"/>);
/// a store created before it (auto-vacuum off) reuses them only, until an operator compacts it (<see cref="Compact"/>).
/// </summary>
public sealed partial class AggregatorStore
{
    private const int SqliteBusy = 5;
    private const int SqliteLocked = 6;

    /// <summary>Free pages given back per transaction by <see cref="ReleaseFreePages"/>: 4 MiB of 4 KiB pages.</summary>
    private const string ReleaseChunkSql = "PRAGMA incremental_vacuum(1024);";

    /// <summary>SQLite's <c>auto_vacuum</c> value for incremental auto-vacuum (0 is none, 1 full).</summary>
    private const long AutoVacuumIncremental = 2;

    /// <summary>
    /// Whether the database file uses incremental auto-vacuum (every store this version creates), so that
    /// <see cref="ReleaseFreePages"/> can shrink it; false for a store created by an earlier version until it is compacted.
    /// </summary>
    public bool ReleasesFreePages => Run(() => IsIncremental(_connection));

    /// <summary>The bytes of the database file's free pages: left by deleted rows, reused by later writes.</summary>
    public long FreeBytes() => Run(() => FreePages(_connection) * PageSize(_connection));

    /// <summary>
    /// Gives the database file's free pages back to the file system (<c>PRAGMA incremental_vacuum</c> 4 MiB at a time,
    /// each in a transaction of its own followed by a passive checkpoint, so that the file itself is truncated when no
    /// reader still needs its old pages; then the write-ahead log is truncated if no reader uses it): call it after a
    /// commit that deleted rows, outside any transaction. It moves live pages from the end of the file into the free
    /// ones, so it writes at least as many bytes as the live pages it moves. Does nothing on a store without incremental
    /// auto-vacuum (<see cref="ReleasesFreePages"/>). Returns the bytes given back.
    /// </summary>
    /// <exception cref="IOException">The file cannot be written (the message names it); nothing committed before is lost.</exception>
    /// <exception cref="InvalidOperationException">Another error from SQLite (the message names the file).</exception>
    public long ReleaseFreePages() => Run(() =>
    {
        if (!IsIncremental(_connection))
        {
            return 0L;
        }

        long free = FreePages(_connection);
        if (free == 0)
        {
            return 0L;
        }

        // In chunks, each a transaction of its own followed by a passive checkpoint, so that the write-ahead log restarts
        // between them: moving a page writes it and the pages that point to it. Giving back five 4 MiB versions (the kept
        // one moved) in one transaction grew the log to 19 MB; 4 MiB at a time, it stayed at the 4.3 MB that storing the
        // model had needed.
        long left = free;
        while (true)
        {
            ReadToEnd(_connection, ReleaseChunkSql); // one page per step: stepped to the end
            ReadToEnd(_connection, "PRAGMA wal_checkpoint(PASSIVE);");
            long now = FreePages(_connection);
            if (now == 0 || now >= left)
            {
                break;
            }

            left = now;
        }

        // Then the log itself is truncated, unless a download still reads from it (never waiting for one).
        Execute(_connection, null, "PRAGMA busy_timeout=0;");
        try
        {
            ReadToEnd(_connection, "PRAGMA wal_checkpoint(TRUNCATE);");
        }
        finally
        {
            Execute(_connection, null, "PRAGMA busy_timeout=5000;");
        }

        return (free - FreePages(_connection)) * PageSize(_connection);
    });

    /// <summary>
    /// Compacts the store at <paramref name="path"/>, which no process may have open: switches it to incremental
    /// auto-vacuum (a store created before this version has none) and rebuilds it (<c>VACUUM</c>), so that it holds no
    /// free pages and later deletions give their pages back to the file system. Every row is kept as it is. VACUUM
    /// writes a temporary copy of the database (in the temporary directory, <c>TMPDIR</c>) and then the whole database
    /// through its write-ahead log next to it: it needs free disk space of up to about twice the compacted size. It is
    /// one transaction: if it fails (no space, a corrupt page), the file is as it was.
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/> (the message names it).</exception>
    /// <exception cref="IOException">Another process has the store open (an aggregator running on it), or the file cannot be read or written (the message names it); nothing was changed.</exception>
    /// <exception cref="InvalidDataException">The file is corrupt, not SQLite, or not a SecureFed aggregator database (the message names it); nothing was changed.</exception>
    public static StoreCompaction Compact(string path)
    {
        string fullPath = ExistingStorePath(path, "compact");
        long before = DiskBytes(fullPath);
        bool wasIncremental;
        using (SqliteConnection connection = OpenExclusive(fullPath, "compact"))
        {
            try
            {
                wasIncremental = IsIncremental(connection);
                Execute(connection, null, "PRAGMA auto_vacuum=INCREMENTAL;"); // takes effect with the VACUUM
                Execute(connection, null, "VACUUM;");
                ReadToEnd(connection, "PRAGMA wal_checkpoint(TRUNCATE);");
                if (!IsIncremental(connection))
                {
                    throw new InvalidOperationException($"Aggregator database '{fullPath}' was compacted but does not report incremental auto-vacuum.");
                }
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode == SqliteFull && Damage(connection) is string damage)
            {
                // VACUUM over a damaged page chain stops with SQLITE_FULL ("database or disk is full") however much room
                // the disk has: the integrity check says which it was.
                throw new InvalidDataException(
                    $"Aggregator database '{fullPath}' is corrupt ({damage}; the rebuild stopped with: {ex.Message}); it was left untouched. Restore it from a backup or point the aggregator at another data directory.",
                    ex);
            }
            catch (SqliteException ex)
            {
                throw Translate(ex, fullPath);
            }
        }

        return new StoreCompaction(fullPath, before, DiskBytes(fullPath), wasIncremental);
    }

    /// <summary>The first problem SQLite's quick integrity check finds in the open database, or null when it finds none.</summary>
    private static string? Damage(SqliteConnection connection)
    {
        try
        {
            using SqliteCommand check = connection.CreateCommand();
            check.CommandText = "PRAGMA quick_check(1);";
            string? first = check.ExecuteScalar() as string;
            return first is null or "ok" ? null : "integrity check: " + first;
        }
        catch (SqliteException ex)
        {
            return "integrity check: " + ex.Message;
        }
    }

    /// <summary>The full path of the store file at <paramref name="path"/>, which must exist; the errors name what <paramref name="verb"/> could not do.</summary>
    private static string ExistingStorePath(string path, string verb)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(fullPath))
        {
            throw new IOException($"Cannot {verb} aggregator database '{fullPath}': it is a directory; nothing was changed.");
        }

        if (!File.Exists(fullPath))
        {
            throw new FileNotFoundException($"Cannot {verb} aggregator database '{fullPath}': the file does not exist; nothing was changed.", fullPath);
        }

        if (new FileInfo(fullPath).Length == 0)
        {
            // SQLite takes an empty file for a new database and its exclusive lock writes a header into it: the file was
            // changed although the error said it was left untouched. An aggregator's store is never empty.
            throw new InvalidDataException($"Cannot {verb} aggregator database '{fullPath}': the file is empty (0 bytes), so it is no aggregator's store (emptied or never written?); it was left untouched.");
        }

        return fullPath;
    }

    /// <summary>
    /// A connection to the SecureFed store at <paramref name="fullPath"/> that holds it exclusively until disposed, so that
    /// no aggregator can open it meanwhile; refused at once when another process (an aggregator running on it) has it open.
    /// </summary>
    /// <exception cref="IOException">Another process has the store open, or it cannot be read or written; nothing was changed.</exception>
    /// <exception cref="InvalidDataException">The file is corrupt, not SQLite, or not a SecureFed aggregator database; nothing was changed.</exception>
    private static SqliteConnection OpenExclusive(string fullPath, string verb)
    {
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = fullPath,
            Mode = SqliteOpenMode.ReadWrite, // never creates a file
            Pooling = false,
            DefaultTimeout = 1, // Microsoft.Data.Sqlite retries a busy database for this long (0 would retry for ever)
        };
        var connection = new SqliteConnection(builder.ConnectionString);
        try
        {
            connection.Open();
            // Exclusive: the lock taken next is held until the connection closes, so no aggregator can open the
            // store meanwhile; and one held elsewhere (an aggregator's open connection) refuses it at once.
            Execute(connection, null, "PRAGMA busy_timeout=0; PRAGMA locking_mode=EXCLUSIVE;");
            try
            {
                Execute(connection, null, "BEGIN EXCLUSIVE; COMMIT;");
            }
            catch (SqliteException ex) when (ex.SqliteErrorCode is SqliteBusy or SqliteLocked)
            {
                throw new IOException(
                    $"Cannot {verb} aggregator database '{fullPath}': another process has it open (an aggregator running on this data directory?); stop it and try again. Nothing was changed.",
                    ex);
            }

            if (Scalar(connection, null, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version';") is null)
            {
                throw new InvalidDataException(
                    $"Cannot {verb} '{fullPath}': it is an SQLite database but not a SecureFed aggregator database (no schema_version); it was left untouched.");
            }

            return connection;
        }
        catch (SqliteException ex)
        {
            connection.Dispose();
            throw Translate(ex, fullPath);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// On a new, empty file: incremental auto-vacuum. It must be set before anything is written: once
    /// <c>journal_mode=WAL</c> or the first table has written the file's header, only a VACUUM can change it. An existing
    /// file keeps its mode.
    /// </summary>
    private static void UseIncrementalVacuumIfNew(SqliteConnection connection)
    {
        if ((long)Scalar(connection, null, "PRAGMA page_count;")! == 0)
        {
            Execute(connection, null, "PRAGMA auto_vacuum=INCREMENTAL;");
        }
    }

    private static bool IsIncremental(SqliteConnection connection) =>
        (long)Scalar(connection, null, "PRAGMA auto_vacuum;")! == AutoVacuumIncremental;

    private static long FreePages(SqliteConnection connection) => (long)Scalar(connection, null, "PRAGMA freelist_count;")!;

    private static long PageSize(SqliteConnection connection) => (long)Scalar(connection, null, "PRAGMA page_size;")!;

    /// <summary>Runs <paramref name="sql"/> and steps through every row it returns (a pragma that works one row at a time).</summary>
    private static void ReadToEnd(SqliteConnection connection, string sql)
    {
        using SqliteCommand cmd = Command(connection, null, sql);
        using SqliteDataReader reader = cmd.ExecuteReader();
        do
        {
            while (reader.Read())
            {
            }
        }
        while (reader.NextResult());
    }

    /// <summary>The database file's bytes and its write-ahead log's, if any.</summary>
    private static long DiskBytes(string path)
    {
        var wal = new FileInfo(path + "-wal");
        return new FileInfo(path).Length + (wal.Exists ? wal.Length : 0);
    }
}
