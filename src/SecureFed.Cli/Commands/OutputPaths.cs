namespace SecureFed.Cli.Commands;

/// <summary>
/// Checks of an output path before a command writes anything: a command never replaces one of its own inputs, an existing
/// file it did not ask for, or a folder of earlier results (usage errors naming the path; nothing on disk is changed).
/// There is no <c>--force</c>: give another path or delete the old one.
/// </summary>
internal static class OutputPaths
{
    private static StringComparison PathComparison => OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;

    /// <summary>Links followed at most while resolving one path (as Linux's MAXSYMLINKS): a loop of links stops here.</summary>
    private const int MaxLinks = 40;

    /// <summary>
    /// Whether two paths name the same file: by full path with every symbolic link among the parts that exist resolved
    /// (so a link to a log folder is that folder); case-insensitively on Windows and macOS, where file systems usually are.
    /// </summary>
    public static bool SamePath(string a, string b) => string.Equals(
        Path.TrimEndingDirectorySeparator(Resolve(a)), Path.TrimEndingDirectorySeparator(Resolve(b)), PathComparison);

    /// <summary>Whether <paramref name="path"/> lies inside <paramref name="folder"/> at any depth (not the folder itself), by full path with links resolved.</summary>
    public static bool IsInside(string path, string folder) =>
        Resolve(path).StartsWith(Path.TrimEndingDirectorySeparator(Resolve(folder)) + Path.DirectorySeparatorChar, PathComparison);

    /// <summary>
    /// The full path of <paramref name="path"/> with each existing part that is a symbolic link (a folder on the way, or
    /// the file itself) replaced by its final target; parts that do not exist yet are kept as written.
    /// </summary>
    internal static string Resolve(string path)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full) ?? string.Empty;
        string current = root;
        int links = 0;
        var parts = new Queue<string>(full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries));
        while (parts.TryDequeue(out string? part))
        {
            string next = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.Exists && info.LinkTarget is { } target && links++ < MaxLinks)
            {
                // The target may itself pass through links: resolve it from its root again, then go on with the rest.
                string targetFull = Path.GetFullPath(target, Path.GetDirectoryName(next) ?? root);
                string targetRoot = Path.GetPathRoot(targetFull) ?? string.Empty;
                var rest = new Queue<string>(targetFull[targetRoot.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries));
                foreach (string remaining in parts)
                {
                    rest.Enqueue(remaining);
                }

                parts = rest;
                current = targetRoot;
                continue;
            }

            current = next;
        }

        return current;
    }

    /// <summary>Refuses an output file <paramref name="path"/> that already exists (as a file or a folder).</summary>
    /// <param name="path">The output file.</param>
    /// <param name="option">The option that gave it, e.g. <c>--out</c>.</param>
    /// <exception cref="UsageException">Something already exists at <paramref name="path"/>.</exception>
    public static void RequireNewFile(string path, string option)
    {
        RequireNotBlank(path, option, "the path of a file to write");
        if (Directory.Exists(path))
        {
            throw new UsageException($"{option} {path} is a folder; give the path of a file to write.");
        }

        // An empty file (made beforehand with mktemp or touch) holds nothing that could be lost.
        if (File.Exists(path) && new FileInfo(path).Length > 0)
        {
            throw new UsageException($"{option} {path} already exists; choose another path or delete it (it is never overwritten).");
        }
    }

    /// <summary>
    /// Refuses an output file <paramref name="path"/> that exists unless it is recognisably an earlier output of the same
    /// command (<paramref name="isEarlierOutput"/>, given the file's first 4 KiB as text), which is replaced; a folder is
    /// always refused. Any other file (a database, a key, a corpus) is never overwritten.
    /// </summary>
    /// <param name="path">The output file.</param>
    /// <param name="option">The option that gave it, e.g. <c>--out</c>.</param>
    /// <param name="what">What the command writes, for the message (e.g. "an audit report").</param>
    /// <param name="isEarlierOutput">Whether the start of the existing file shows it to be an earlier output.</param>
    /// <exception cref="UsageException">The path is a folder, or an existing file that is not an earlier output.</exception>
    public static void RequireNewOrEarlierOutput(string path, string option, string what, Func<string, bool> isEarlierOutput)
    {
        ArgumentNullException.ThrowIfNull(isEarlierOutput);
        RequireNotBlank(path, option, "the path of a file to write");
        if (Directory.Exists(path))
        {
            throw new UsageException($"{option} {path} is a folder; give the path of a file to write.");
        }

        if (!File.Exists(path) || new FileInfo(path).Length == 0) // new, or empty (mktemp, touch): nothing to lose
        {
            return;
        }

        string head;
        try
        {
            using var reader = new StreamReader(path, detectEncodingFromByteOrderMarks: true);
            var buffer = new char[4096];
            head = new string(buffer, 0, reader.ReadBlock(buffer, 0, buffer.Length));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option} {path} already exists and cannot be read to check that it is {what} ({ex.Message}); choose another path or delete it.");
        }

        if (!isEarlierOutput(head))
        {
            throw new UsageException($"{option} {path} already exists and is not {what}; it is never overwritten (choose another path, or delete it if it is no longer needed).");
        }
    }

    /// <summary>Refuses an output folder <paramref name="path"/> that is an existing file or a folder that is not empty.</summary>
    /// <param name="path">The output folder.</param>
    /// <param name="option">The option that gave it, e.g. <c>--out</c>.</param>
    /// <param name="what">What would be overwritten, for the message (e.g. "earlier results").</param>
    /// <exception cref="UsageException">The folder cannot be used.</exception>
    public static void RequireNewFolder(string path, string option, string what)
    {
        RequireNotBlank(path, option, "a folder that does not exist or is empty");
        if (File.Exists(path))
        {
            throw new UsageException($"{option} {path} is a file; {option} must be a folder that does not exist or is empty.");
        }

        if (Directory.Exists(path) && Directory.EnumerateFileSystemEntries(path).Any())
        {
            throw new UsageException($"{option} {path} already exists and is not empty; {what} are never overwritten (give a new folder).");
        }
    }

    /// <summary>
    /// Checks, before any work, that the output folder <paramref name="path"/> can be made and written to, so that a command
    /// does not train for an hour and then fail to save: no file stands where a folder on its way belongs, and the folder
    /// (created with its missing parents for the check) takes a file. Whatever the check created is removed again, whether
    /// it passes or not; the command creates the folder when it writes.
    /// </summary>
    /// <param name="path">The output folder (it may exist, or not yet).</param>
    /// <param name="option">The option that gave it, e.g. <c>--out</c>.</param>
    /// <exception cref="UsageException">A file stands where the folder or one of its parents belongs.</exception>
    /// <exception cref="IOException">The folder cannot be created or written to (no permission, a read-only file system); the message names <paramref name="option"/>, the path and the cause.</exception>
    public static void RequireWritableFolder(string path, string option)
    {
        RequireNotBlank(path, option, "a folder to write to");
        string full = Path.GetFullPath(path);
        RequireNoFileOnTheWay(full, path, option, "the folder");
        ProbeWrite(full, path, option);
    }

    /// <summary>
    /// Checks, before any work, that the output file <paramref name="path"/> can be written: its folder exists (it is not
    /// created: a mistyped folder is more likely than a wish for a new one), is a folder, and takes a file.
    /// </summary>
    /// <param name="path">The output file.</param>
    /// <param name="option">The option that gave it, e.g. <c>--conll-out</c>.</param>
    /// <exception cref="UsageException">The file's folder does not exist, or a file stands where it or one of its parents belongs.</exception>
    /// <exception cref="IOException">No file can be created in the folder (no permission, a read-only file system); the message names <paramref name="option"/>, the path and the cause.</exception>
    public static void RequireWritableFileFolder(string path, string option)
    {
        RequireNotBlank(path, option, "the path of a file to write");
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? full;
        RequireNoFileOnTheWay(folder, path, option, "the file's folder");
        if (!Directory.Exists(folder))
        {
            throw new UsageException($"{option} {path}: the folder {folder} does not exist; create it first or give a file in an existing folder.");
        }

        ProbeWrite(folder, path, option);
    }

    /// <summary>
    /// Checks, before any work, that the output file <paramref name="path"/> can be written where its folder may not exist
    /// yet (the command creates it, e.g. 'audit report --out reports/today.html'): no file stands where that folder or one of
    /// its parents belongs, and the folder (created for the check and removed again) takes a file.
    /// </summary>
    /// <param name="path">The output file.</param>
    /// <param name="option">The option that gave it, e.g. <c>--out</c>.</param>
    /// <exception cref="UsageException">A file stands where the file's folder or one of its parents belongs.</exception>
    /// <exception cref="IOException">The folder cannot be created or written to (no permission, a read-only file system); the message names <paramref name="option"/>, the path and the cause.</exception>
    public static void RequireCreatableFileFolder(string path, string option)
    {
        RequireNotBlank(path, option, "the path of a file to write");
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? full;
        RequireNoFileOnTheWay(folder, path, option, "the file's folder");
        ProbeWrite(folder, path, option);
    }

    /// <summary>Refuses a <paramref name="folder"/> that is, or lies under, an existing file (the nearest existing part of its path is a file).</summary>
    private static void RequireNoFileOnTheWay(string folder, string given, string option, string what)
    {
        for (string? part = folder; part is not null && !Directory.Exists(part); part = Path.GetDirectoryName(part))
        {
            if (File.Exists(part))
            {
                throw new UsageException(part == folder
                    ? $"{option} {given}: {what} {part} is a file; give a path in a folder."
                    : $"{option} {given}: {part} is a file, so {what} {folder} cannot be created under it; give a path in a folder.");
            }
        }
    }

    /// <summary>
    /// Creates <paramref name="folder"/> (and its missing parents) and a temporary file in it, then removes the file and
    /// every folder it created, so nothing is left behind either way.
    /// </summary>
    private static void ProbeWrite(string folder, string given, string option)
    {
        var created = new List<string>(); // deepest first: the order to remove them in
        for (string? part = folder; part is not null && !Directory.Exists(part); part = Path.GetDirectoryName(part))
        {
            created.Add(part);
        }

        try
        {
            Directory.CreateDirectory(folder);
            string probe = Path.Combine(folder, $".securefed-write-check-{Guid.NewGuid():N}");
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{option} {given}: cannot {(created.Count > 0 ? "create the folder " + folder + " or " : "")}write in {(created.Count > 0 ? "it" : "the folder " + folder)} ({ex.Message}); give a folder you can write to.", ex);
        }
        finally
        {
            foreach (string dir in created)
            {
                try
                {
                    Directory.Delete(dir); // only if empty: never anything this check did not make
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Not created after all (the creation failed above it), or no longer empty: left as it is.
                }
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="write"/>, which writes the output <paramref name="option"/> names; a failure of the file system
    /// (a folder where no file can be created, no space, no permission) is reported with the option in front. The exit
    /// code stays that of a failed operation: the path itself was a valid one.
    /// </summary>
    /// <typeparam name="T">What <paramref name="write"/> returns.</typeparam>
    /// <param name="option">The option that gave the output path, e.g. <c>--out</c>.</param>
    /// <param name="write">The writing.</param>
    /// <exception cref="IOException">Writing failed; the message starts with <paramref name="option"/>.</exception>
    public static T Writing<T>(string option, Func<T> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        try
        {
            return write();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{option}: {ex.Message}", ex);
        }
    }

    /// <summary>Refuses an empty or blank output path (which would otherwise fail later with a message naming no option).</summary>
    private static void RequireNotBlank(string path, string option, string expected)
    {
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new UsageException($"{option} is blank; give {expected}.");
        }
    }
}
