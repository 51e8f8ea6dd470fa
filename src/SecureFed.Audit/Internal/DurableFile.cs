using System.Globalization;
using System.Text;

using SecureFed.Federation;

namespace SecureFed.Audit.Internal;

/// <summary>Small-file writes that survive a crash: write a temporary file, fsync, rename over the target.</summary>
internal static class DurableFile
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void WriteAllText(string path, string text) => WriteAllBytes(path, Utf8.GetBytes(text));

    public static void WriteAllBytes(string path, byte[] data)
    {
        string temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(data);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The most a checkpoint (or a verifier key) file can hold: a signed note of a few hundred bytes, with room to spare.</summary>
    public const int MaxSmallFileBytes = 64 * 1024;

    /// <summary>
    /// Reads a small file (a checkpoint) as strict UTF-8, at most <paramref name="maxBytes"/> bytes. The size is taken
    /// from the file a link leads to before it is opened: a pipe (opening it waits for a writer: verify hung), a device
    /// (a link to /dev/zero read until memory ran out and aborted the process) or a socket has size 0, as an empty
    /// file has, and none is a checkpoint; a file beyond the cap (a 3 GB sparse file failed with an error naming no
    /// file) is refused unread. The read itself stops past the cap, should the file grow in between.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is empty or not a regular file, too large, or not valid UTF-8; the message names it.</exception>
    /// <exception cref="IOException">The file (or the target of its link) does not exist or cannot be read, or its links form a loop.</exception>
    public static string ReadSmallText(string path, int maxBytes = MaxSmallFileBytes)
    {
        var info = new FileInfo(path);
        // Where the kernel's open leads: each link's relative target from the link's real folder. .NET's ResolveLinkTarget
        // folds ".." against the folder as written, so a relative link inside a linked log folder was checked at another
        // path than the one opened (review of session 59; the fix of AtomicFile.FinalTarget, session 58).
        FileInfo target = info.LinkTarget is null ? info : new FileInfo(AtomicFile.FinalTarget(path));
        if (!target.Exists)
        {
            throw new FileNotFoundException(info.LinkTarget is null ? $"{path} does not exist." : $"{path} is a link to {target.FullName}, which does not exist.", path);
        }

        if (target.Length == 0)
        {
            throw new InvalidDataException($"{path} is empty or not a regular file (a pipe, a device or a link to one){(info.LinkTarget is null ? string.Empty : $": it leads to {target.FullName}")}; it was not read.");
        }

        if (target.Length > maxBytes)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"{path} is {target.Length:N0} bytes, more than the {maxBytes:N0} such a file can be: not one this product wrote (a sparse or damaged file?); it was not read."));
        }

        byte[] data = new byte[maxBytes + 1];
        int read;
        using (FileStream stream = File.OpenRead(path))
        {
            read = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        }

        if (read > maxBytes)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"{path} holds more than the {maxBytes:N0} bytes such a file can be: not one this product wrote."));
        }

        try
        {
            return Utf8.GetString(data, 0, read);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidDataException($"{path} is not valid UTF-8.");
        }
    }

    /// <summary>Reads a file as strict UTF-8.</summary>
    /// <exception cref="InvalidDataException">The file is not valid UTF-8.</exception>
    public static string ReadAllText(string path)
    {
        byte[] data = File.ReadAllBytes(path);
        try
        {
            return Utf8.GetString(data);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidDataException($"{path} is not valid UTF-8.");
        }
    }

    /// <summary>
    /// What <paramref name="path"/> is when it is not a regular file (links followed): "a named pipe (FIFO)", "a
    /// character device", "a directory", "a block device", "a socket"; null for a regular file, a path that does not exist
    /// or cannot be examined (opening it then says why in .NET's words), and on systems other than Linux (directories
    /// aside). The Federation project's statx check (<c>RegularFile.NonRegularKind</c>): opening a FIFO for reading waits
    /// for a writer.
    /// </summary>
    public static string? NotRegularKind(string path) =>
        Directory.Exists(path) ? "a directory" : SecureFed.Federation.Internal.RegularFile.NonRegularKind(path);
}
