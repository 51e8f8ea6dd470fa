namespace SecureFed.Cli.Commands;

/// <summary>
/// Checks of an input file a command reads: a path that is missing and one that is a folder are both usage errors naming
/// the option and the path, each saying which of the two it is.
/// </summary>
internal static class InputPaths
{
    /// <summary>Refuses an input file <paramref name="path"/> that does not exist or is a folder.</summary>
    /// <param name="path">The input file.</param>
    /// <param name="option">The option that gave it, e.g. <c>--manifest</c>.</param>
    /// <returns><paramref name="path"/>'s full path.</returns>
    /// <exception cref="UsageException">There is no file at <paramref name="path"/>.</exception>
    public static string RequireFile(string path, string option)
    {
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new UsageException($"{option} is blank; give the path of the file.");
        }

        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            throw new UsageException($"{option} {full} is a folder; give the file itself.");
        }

        return File.Exists(full) ? full : throw new UsageException($"{option}: file not found: {full}");
    }
}
