using System.Runtime.InteropServices;
using System.Text;
using SecureFed.Federation.Internal;

namespace SecureFed.Federation;

/// <summary>
/// Crash-safe file replacement: the new content is written to a temporary file in the same directory, flushed to
/// disk, renamed over the target and the directory entry is flushed. Readers see either the old or the new file,
/// never a torn one; if anything fails before the rename the previous file is left untouched.
/// </summary>
public static partial class AtomicFile
{
    /// <summary>Permissions for secrets (private keys): owner read/write only (0600).</summary>
    public const UnixFileMode SecretFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Permissions for public material: owner read/write, group and others read (0644).</summary>
    public const UnixFileMode PublicFileMode = SecretFileMode | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>Atomically replaces (or creates) <paramref name="path"/> with <paramref name="bytes"/> (mode 0644 on Unix).</summary>
    /// <exception cref="IOException">The file could not be written; the message names the path. The old file is intact.</exception>
    /// <exception cref="DirectoryFlushException">The new file is in place, but its directory could not be flushed.</exception>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes) => WriteAllBytes(path, bytes, PublicFileMode);

    /// <summary>
    /// Atomically replaces (or creates) <paramref name="path"/> with <paramref name="bytes"/>; on Unix the file is
    /// created with <paramref name="mode"/> from the start (no window in which a secret is readable by others).
    /// </summary>
    /// <exception cref="IOException">The file could not be written; the message names the path. The old file is intact.</exception>
    /// <exception cref="DirectoryFlushException">The new file is in place, but its directory could not be flushed.</exception>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, UnixFileMode mode) => Write(path, bytes, mode, beforeRename: null);

    /// <summary>
    /// Atomically creates <paramref name="path"/> with <paramref name="bytes"/> and <paramref name="mode"/>, never replacing
    /// an existing file (a backup kept beside the file it saves): written in full to a temporary file, fsync'ed, renamed
    /// without overwrite, and the directory fsync'ed, so the file is either whole or absent.
    /// </summary>
    /// <exception cref="IOException">The file exists already or could not be written; the message names the path. Nothing is left behind.</exception>
    /// <exception cref="DirectoryFlushException">The new file is in place, but its directory could not be flushed.</exception>
    public static void CreateNew(string path, ReadOnlySpan<byte> bytes, UnixFileMode mode) => Write(path, bytes, mode, beforeRename: null, overwrite: false);

    /// <summary>Atomically replaces (or creates) <paramref name="path"/> with <paramref name="text"/> in UTF-8 without BOM (mode 0644 on Unix).</summary>
    /// <exception cref="IOException">The file could not be written; the message names the path. The old file is intact.</exception>
    /// <exception cref="DirectoryFlushException">The new file is in place, but its directory could not be flushed.</exception>
    public static void WriteAllText(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        WriteAllBytes(path, Encoding.UTF8.GetBytes(text), PublicFileMode);
    }

    /// <summary>
    /// The file a symbolic link at <paramref name="path"/> finally points to (links followed to the end), or the full
    /// path itself when it is no link (or does not exist yet). A file that is changed in place through a link (a
    /// federation.json linked into a kit or a configuration folder) is written there: a rename over the link's own
    /// path would replace the link with a copy, and the target, which the services read, would keep the old content.
    /// </summary>
    /// <remarks>
    /// Each link's relative target is taken from the link's real folder, as the kernel follows it: .NET's
    /// <c>ResolveLinkTarget</c> joins it to the folder as written and folds "..", so a link in a linked folder
    /// (/etc/securefed → ../opt/config, holding federation.json → ../kits/federation.json) led to /etc/kits instead of
    /// /opt/kits (diff review of session 58).
    /// </remarks>
    /// <exception cref="IOException">The links form a loop or go too deep; the message names the path.</exception>
    internal static string FinalTarget(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string current = Path.GetFullPath(path);
        for (int hops = 0; ; hops++)
        {
            string folder = RealFolder(Path.GetDirectoryName(current) ?? current, path, 0);
            current = Path.Combine(folder, Path.GetFileName(current));
            if (new FileInfo(current).LinkTarget is not { } target)
            {
                return current;
            }

            if (hops >= MaxLinkHops)
            {
                throw new IOException($"Cannot follow '{path}': more than {MaxLinkHops} symbolic links (a loop?).");
            }

            current = Path.GetFullPath(Path.IsPathRooted(target) ? target : Path.Combine(folder, target));
        }
    }

    private const int MaxLinkHops = 40;

    /// <summary>The folder <paramref name="folder"/> with every symbolic link along it followed, component by component from the root.</summary>
    private static string RealFolder(string folder, string path, int depth)
    {
        string full = Path.GetFullPath(folder);
        string root = Path.GetPathRoot(full) ?? string.Empty;
        string real = root;
        foreach (string part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(real, part);
            if (new DirectoryInfo(next).LinkTarget is not { } target)
            {
                real = next;
                continue;
            }

            if (++depth > MaxLinkHops)
            {
                throw new IOException($"Cannot follow '{path}': more than {MaxLinkHops} symbolic links (a loop?).");
            }

            real = RealFolder(Path.IsPathRooted(target) ? target : Path.Combine(real, target), path, depth);
        }

        return real;
    }

    /// <summary>The implementation; <paramref name="beforeRename"/> is a fault-injection hook for tests (called with the temp path).</summary>
    internal static void Write(string path, ReadOnlySpan<byte> bytes, UnixFileMode mode, Action<string>? beforeRename, bool overwrite = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath)
            ?? throw new IOException($"Cannot write '{fullPath}': it has no parent directory.");
        if (!Directory.Exists(directory))
        {
            throw new IOException($"Cannot write '{fullPath}': the directory '{directory}' does not exist.");
        }

        string tempPath = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
            };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = mode;
            }

            using (var stream = new FileStream(tempPath, options))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            beforeRename?.Invoke(tempPath);
            File.Move(tempPath, fullPath, overwrite);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(tempPath);
            throw new IOException($"Cannot write '{fullPath}': {TemporaryPath.Reason(ex, tempPath, fullPath)} The previous content (if any) is unchanged.", ex);
        }

        FlushDirectory(directory, fullPath);
    }

    /// <summary>
    /// As <see cref="WriteAllBytes(string, ReadOnlySpan{byte}, UnixFileMode)"/>, for content too large to hold in memory:
    /// <paramref name="write"/> writes it into the temporary file (a unique hidden name beside <paramref name="path"/>,
    /// created new: never a file, folder or named pipe already there), which is then fsync'ed and renamed into place.
    /// If anything fails, <paramref name="write"/> included (whatever it throws is thrown on), the temporary file is
    /// deleted and <paramref name="path"/> is unchanged.
    /// </summary>
    /// <exception cref="IOException">The file could not be written; the message names the path. The old file is intact.</exception>
    /// <exception cref="DirectoryFlushException">The new file is in place, but its directory could not be flushed.</exception>
    internal static void Write(string path, UnixFileMode mode, Action<FileStream> write, bool overwrite = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath)
            ?? throw new IOException($"Cannot write '{fullPath}': it has no parent directory.");
        if (!Directory.Exists(directory))
        {
            throw new IOException($"Cannot write '{fullPath}': the directory '{directory}' does not exist.");
        }

        string tempPath = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
            };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = mode;
            }

            using (var stream = new FileStream(tempPath, options))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }

            File.Move(tempPath, fullPath, overwrite);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(tempPath);
            throw new IOException($"Cannot write '{fullPath}': {TemporaryPath.Reason(ex, tempPath, fullPath)} The previous content (if any) is unchanged.", ex);
        }
        catch
        {
            TryDelete(tempPath);
            throw;
        }

        FlushDirectory(directory, fullPath);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: a leftover temp file is harmless (hidden, unique name) and never read.
        }
    }

    /// <summary>
    /// Test hook: called with the directory before each directory fsync; a non-zero result is taken as the errno of a
    /// failed fsync (the real one is skipped). Tests match their own temporary directory only.
    /// </summary>
    internal static Func<string, int>? DirectoryFsyncFault;

    /// <summary>
    /// fsync <paramref name="directory"/> so that a rename or move into it survives a power loss (Unix only; NTFS journals
    /// renames). <paramref name="entry"/> is what was renamed into it, for the message.
    /// </summary>
    /// <exception cref="DirectoryFlushException">The fsync failed.</exception>
    internal static void FlushDirectory(string directory, string entry)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        int fd = Open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            // Some file systems do not allow opening directories; the data itself is already durable.
            return;
        }

        try
        {
            int errno = DirectoryFsyncFault?.Invoke(directory) ?? 0;
            if (errno == 0 && Fsync(fd) != 0)
            {
                errno = Marshal.GetLastPInvokeError();
            }

            const int EINVAL = 22;
            if (errno != 0 && errno != EINVAL)
            {
                throw new DirectoryFlushException(entry, directory, $"{Marshal.GetPInvokeErrorMessage(errno)}, errno {errno}");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
