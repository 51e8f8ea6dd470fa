using System.Globalization;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// Where this silo's slice grains spill the chunks they have added into their sums but not yet committed
/// (<see cref="SliceSpill"/>): a directory of its own,
/// <c>&lt;SecureFed:Cluster:SpillDirectory&gt;/securefed-slice-spill/&lt;address&gt;-&lt;silo port&gt;</c> (default: in
/// the machine's temporary directory, <c>TMPDIR</c>), so that silos sharing a machine never touch each other's files. On Unix each spill file is
/// unlinked as soon as it is open: its open handle keeps the data, and a killed silo leaves nothing on disk. Where that
/// is not possible (Windows, or an unlink that fails) the file is deleted when closed and, if the silo is killed first,
/// by <see cref="DeleteStale"/> when a silo starts on the same port again (<see cref="SliceSpillCleanup"/>).
/// </summary>
internal partial class SliceSpillStore
{
    /// <summary>The folder, in the spill directory, that holds one directory per silo.</summary>
    public const string FolderName = "securefed-slice-spill";

    private long _next;
    private long _open;

    /// <summary>The spill directory of <paramref name="silo"/> under <paramref name="spillDirectory"/> (null or empty: <c>TMPDIR</c>).</summary>
    public SliceSpillStore(ILocalSiloDetails silo, string? spillDirectory = null)
        : this(Path.Combine(string.IsNullOrWhiteSpace(spillDirectory) ? Path.GetTempPath() : spillDirectory, FolderName,
            string.Create(CultureInfo.InvariantCulture, $"{Sanitize(silo.SiloAddress.Endpoint.Address.ToString())}-{silo.SiloAddress.Endpoint.Port}")))
    {
    }

    public SliceSpillStore(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = directory;
    }

    /// <summary>The silo's spill directory.</summary>
    public string Directory { get; }

    /// <summary>Spills open now (created and not yet disposed), whether or not their files are still on disk.</summary>
    public long OpenSpills => Interlocked.Read(ref _open);

    /// <summary>Deletes every spill file in the directory (left by a silo that was killed); returns how many.</summary>
    public int DeleteStale()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return 0;
        }

        int deleted = 0;
        foreach (string file in System.IO.Directory.EnumerateFiles(Directory, "*.spill"))
        {
            File.Delete(file);
            deleted++;
        }

        return deleted;
    }

    /// <summary>
    /// Removes the spill directory if it is empty (a clean stop; a directory that still holds a spill stays for the next
    /// start); returns whether it is gone.
    /// </summary>
    public bool RemoveIfEmpty()
    {
        try
        {
            if (System.IO.Directory.Exists(Directory) && !System.IO.Directory.EnumerateFileSystemEntries(Directory).Any())
            {
                System.IO.Directory.Delete(Directory);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // a spill created meanwhile, or no right to remove it: it stays
        }

        return !System.IO.Directory.Exists(Directory);
    }

    /// <summary>
    /// Removes the empty spill directories of other silos beside this one (named <c>&lt;address&gt;-&lt;port&gt;</c>, in the
    /// same <see cref="FolderName"/> folder) that nothing has touched for
    /// <paramref name="idle"/> (left by silos that were killed and never started again on their port); returns them. A
    /// live silo whose idle directory is removed creates it again with its next spill (<see cref="Create"/>).
    /// </summary>
    public IReadOnlyList<string> RemoveAbandonedSiblings(TimeSpan idle, DateTime nowUtc)
    {
        string? root = Path.GetDirectoryName(Path.GetFullPath(Directory));
        var removed = new List<string>();
        if (root is null || !System.IO.Directory.Exists(root))
        {
            return removed;
        }

        string own = Path.GetFullPath(Directory);
        foreach (string sibling in System.IO.Directory.EnumerateDirectories(root))
        {
            try
            {
                if (Path.GetFullPath(sibling) != own && SiloDirectoryName().IsMatch(Path.GetFileName(sibling))
                    && nowUtc - System.IO.Directory.GetLastWriteTimeUtc(sibling) > idle
                    && !System.IO.Directory.EnumerateFileSystemEntries(sibling).Any())
                {
                    System.IO.Directory.Delete(sibling); // fails if a file appeared meanwhile: never recursive
                    removed.Add(sibling);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // in use, or not ours to remove
            }
        }

        return removed;
    }

    /// <summary>Creates a new spill file for <paramref name="sender"/>'s chunk of slice <paramref name="slice"/> (a grain key).</summary>
    /// <exception cref="IOException">The file could not be created.</exception>
    /// <exception cref="UnauthorizedAccessException">The directory may not be written.</exception>
    public SliceSpill Create(string slice, int sender)
    {
        ArgumentException.ThrowIfNullOrEmpty(slice);
        string path = Path.Combine(Directory, string.Create(CultureInfo.InvariantCulture,
            $"{Sanitize(slice)}.{sender}.{Interlocked.Increment(ref _next)}.spill"));
        Stream stream;
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            stream = Open(path, deleteOnClose: OperatingSystem.IsWindows());
        }
        catch (DirectoryNotFoundException)
        {
            // Removed between the two calls (an idle directory swept by another silo starting): once more.
            System.IO.Directory.CreateDirectory(Directory);
            stream = Open(path, deleteOnClose: OperatingSystem.IsWindows());
        }

        string? deleteOnDispose = null;
        if (!OperatingSystem.IsWindows())
        {
            try
            {
                Unlink(path); // the open handle keeps the data; nothing is left on disk, even if the silo is killed
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                deleteOnDispose = path; // the fallback: deleted when closed, or by the next start after a kill
            }
        }

        Interlocked.Increment(ref _open);
        return new SliceSpill(stream, path, deleteOnDispose, () => Interlocked.Decrement(ref _open));
    }

    /// <summary>Opens the file (tests replace this to make writes fail).</summary>
    protected virtual Stream Open(string path, bool deleteOnClose)
        => new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, bufferSize: 0,
            (deleteOnClose ? FileOptions.DeleteOnClose : FileOptions.None) | FileOptions.Asynchronous);

    /// <summary>Removes the file's name while it is open (tests replace this to make it fail).</summary>
    protected virtual void Unlink(string path) => File.Delete(path);

    [System.Text.RegularExpressions.GeneratedRegex("^[0-9A-Za-z_.]+-[0-9]{1,5}$")]
    private static partial System.Text.RegularExpressions.Regex SiloDirectoryName();

    private static string Sanitize(string name)
        => string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
}
