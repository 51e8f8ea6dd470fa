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
