namespace SecureFed.Federation;

/// <summary>
/// A file was renamed into place (its new content is what readers see now), but flushing its directory to disk failed:
/// the rename may not survive a power loss. Unlike every other <see cref="IOException"/> of <see cref="AtomicFile"/>,
/// the change has happened; a caller must not undo what goes with it or report it as unchanged.
/// </summary>
public sealed class DirectoryFlushException : IOException
{
    /// <summary>Creates the exception for <paramref name="path"/>, whose directory <paramref name="directory"/> could not be flushed.</summary>
    public DirectoryFlushException(string path, string directory, string reason)
        : base($"'{path}' was written, but flushing its directory '{directory}' failed ({reason}): the change may not survive a power loss.")
    {
        Path = path;
        Directory = directory;
    }

    /// <summary>The file that was written.</summary>
    public string Path { get; }

    /// <summary>The directory whose flush failed.</summary>
    public string Directory { get; }
}
