using SecureFed.Federation.Internal;
using SecureFed.Tagger;

namespace SecureFed.Cli.Commands;

/// <summary>
/// Checks of an input file or folder a command reads: a path that is missing and one that is of the other kind are usage
/// errors naming the option and the path, each saying which it is.
/// </summary>
internal static class InputPaths
{
    /// <summary>What a CoNLL corpus folder option wants, for <see cref="RequireFolder"/>'s messages.</summary>
    public const string Corpus = "the folder that holds the corpus's train.tsv, dev.tsv and test.tsv";

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

        if (!File.Exists(full))
        {
            throw new UsageException($"{option}: file not found: {full}");
        }

        RequireRegular(full, $"give {option} a regular file");
        return full;
    }

    /// <summary>
    /// Refuses an existing input file <paramref name="path"/> that is not a regular file (a named pipe, a device, a socket),
    /// before it is opened: <see cref="File.Exists(string?)"/> is true for them, and opening a named pipe for reading
    /// waited for a writer forever (the command hung with no message). /dev/stdin and /dev/fd/N, a descriptor of this
    /// process named explicitly (a shell's process substitution), are read as asked, as the CoNLL reader reads them.
    /// </summary>
    /// <param name="path">The input file.</param>
    /// <param name="advice">What to do instead, e.g. "give --input a regular file".</param>
    /// <exception cref="UsageException"><paramref name="path"/> is not a regular file; the message names it and what it is.</exception>
    public static void RequireRegular(string path, string advice)
    {
        if (!ConllReader.IsExplicitStream(path) && RegularFile.NonRegularKind(path) is { } kind)
        {
            throw new UsageException($"{path}{RegularFile.LinkText(path)} is {kind}, not a regular file; {advice}. It was not opened.");
        }
    }

    /// <summary>Refuses an input folder <paramref name="path"/> that does not exist or is a file.</summary>
    /// <param name="path">The input folder.</param>
    /// <param name="option">The option that gave it, e.g. <c>--data</c>.</param>
    /// <param name="what">What the folder should be, e.g. "the folder that holds the corpus's train.tsv, dev.tsv and test.tsv".</param>
    /// <returns><paramref name="path"/>.</returns>
    /// <exception cref="UsageException"><paramref name="path"/> is blank, a file or missing.</exception>
    public static string RequireFolder(string path, string option, string what)
    {
        RequireNotAFile(path, option, what);
        return Directory.Exists(path) ? path : throw new UsageException($"{option} {path}: no such folder; give {what}.");
    }

    /// <summary>Refuses an input folder <paramref name="path"/> that is a file (a missing folder is left to the command to name).</summary>
    /// <param name="path">The input folder.</param>
    /// <param name="option">The option that gave it, e.g. <c>--data-dir</c>.</param>
    /// <param name="what">What the folder is, e.g. "the aggregator's data folder (its DataDirectory, holding aggregator.db)".</param>
    /// <returns><paramref name="path"/>.</returns>
    /// <exception cref="UsageException"><paramref name="path"/> is blank or a file.</exception>
    public static string RequireNotAFile(string path, string option, string what)
    {
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new UsageException($"{option} is blank; give {what}.");
        }

        string full = Path.GetFullPath(path);
        return File.Exists(full) ? throw new UsageException($"{option} {full} is a file; give {what}.") : path;
    }
}
