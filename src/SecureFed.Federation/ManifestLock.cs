using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace SecureFed.Federation;

/// <summary>
/// The exclusive lock a command holds while it reads, changes and rewrites a federation manifest (and, for
/// <c>provision add-site</c>, the federation folder beside it): the file <c>&lt;manifest&gt;.lock</c> beside the manifest (e.g. <c>federation.json.lock</c>), opened
/// with <see cref="FileShare.None"/> (an advisory <c>flock</c> on Unix), so two such commands never both read the old
/// manifest and the later write drops the earlier change. The operating system releases it when the holder ends,
/// however it ends; the (empty) lock file itself is left in place and is harmless. The holder writes what it is doing
/// to <c>&lt;manifest&gt;.lock.holder</c> for the message of a command that could not get the lock.
/// </summary>
public sealed class ManifestLock : IDisposable
{
    /// <summary>How long <see cref="Acquire"/> waits for another holder by default: 10 s (an add-site or a revoke takes well under a second).</summary>
    public static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan s_poll = TimeSpan.FromMilliseconds(50);

    private readonly FileStream _lock;
    private readonly string _holderPath;
    private bool _disposed;

    private ManifestLock(FileStream stream, string lockPath, string holderPath)
    {
        _lock = stream;
        LockPath = lockPath;
        _holderPath = holderPath;
    }

    /// <summary>The lock file: the manifest's path with <c>.lock</c> appended.</summary>
    public string LockPath { get; }

    /// <summary>
    /// The lock file of the manifest <paramref name="manifestPath"/>, beside the file a symbolic link finally points to:
    /// a command given the link and one given the target change the same file, so they take the same lock.
    /// </summary>
    public static string PathFor(string manifestPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(manifestPath);
        return AtomicFile.FinalTarget(manifestPath) + ".lock";
    }

    /// <summary>
    /// Takes the lock of the manifest <paramref name="manifestPath"/>, waiting up to <paramref name="wait"/>
    /// (<see cref="DefaultWait"/> by default) while another command holds it.
    /// </summary>
    /// <param name="manifestPath">The manifest about to be read and rewritten.</param>
    /// <param name="operation">What the caller does, for another command's message (e.g. <c>provision add-site --site site-c</c>).</param>
    /// <param name="wait">How long to wait for another holder.</param>
    /// <exception cref="IOException">Another command held the lock all that time (the message names the lock file and,
    /// when it recorded it, that command), or the lock file cannot be created. Nothing was changed.</exception>
    public static ManifestLock Acquire(string manifestPath, string operation, TimeSpan? wait = null)
    {
        ArgumentNullException.ThrowIfNull(operation);
        string lockPath = PathFor(manifestPath);
        string holderPath = lockPath + ".holder";
        TimeSpan limit = wait ?? DefaultWait;
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, TimeSpan.Zero, nameof(wait));
        var waited = Stopwatch.StartNew();
        while (true)
        {
            FileStream? stream = TryOpen(lockPath);
            if (stream is not null)
            {
                string holder = string.Create(CultureInfo.InvariantCulture,
                    $"'{operation}' (process {Environment.ProcessId}, since {TimeProvider.System.GetUtcNow():yyyy-MM-dd HH:mm:ss} UTC)");
                try
                {
                    File.WriteAllText(holderPath, holder + "\n", Encoding.UTF8);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Only for another command's message; the lock is what matters.
                }

                return new ManifestLock(stream, lockPath, holderPath);
            }

            if (waited.Elapsed >= limit)
            {
                string other = ReadHolder(holderPath) ?? "another securefed provision command";
                string seconds = limit.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
                throw new IOException(
                    $"'{Path.GetFileName(manifestPath)}' is being changed by {other}: its lock file {lockPath} was held for all of {seconds} s. " +
                    "Nothing was changed; run this again once that command has finished (the lock is released when it ends, however it ends).");
            }

            Thread.Sleep(s_poll);
        }
    }

    /// <summary>Releases the lock.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            File.Delete(_holderPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A stale holder note is overwritten by the next holder.
        }

        _lock.Dispose();
    }

    /// <summary>The lock file opened exclusively, or null while another holds it.</summary>
    private static FileStream? TryOpen(string lockPath)
    {
        try
        {
            // Read access is enough for the lock (flock on Unix, the share mode on Windows) and nothing is ever written to
            // the file: a lock file another user left (an earlier command run with sudo: root's, mode 0644) still locks.
            return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.Read, FileShare.None);
        }
        catch (IOException ex) when (ex is not FileNotFoundException and not DirectoryNotFoundException and not PathTooLongException && File.Exists(lockPath))
        {
            return null; // held by another (EWOULDBLOCK on Unix, a sharing violation on Windows)
        }
        catch (UnauthorizedAccessException ex) when (File.Exists(lockPath))
        {
            throw new IOException(
                $"Cannot open the lock file {lockPath}: {ex.Message} Another user's command created it, and this user may not read it: " +
                "if no 'securefed provision' command is running, remove it and run this again. Nothing was changed.", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Cannot create the lock file {lockPath}: {ex.Message}", ex);
        }
    }

    private static string? ReadHolder(string holderPath)
    {
        try
        {
            return File.Exists(holderPath) ? File.ReadAllText(holderPath, Encoding.UTF8).Trim() is { Length: > 0 } text ? text : null : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
