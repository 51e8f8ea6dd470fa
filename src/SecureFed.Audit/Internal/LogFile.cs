using System.Globalization;

namespace SecureFed.Audit.Internal;

/// <summary>The raw contents of an audit.jsonl: complete lines (without newlines) and a torn tail, if any.</summary>
internal sealed class LogFile
{
    private LogFile(List<ReadOnlyMemory<byte>> lines, byte[]? tornTail, long tornTailOffset)
    {
        Lines = lines;
        TornTail = tornTail;
        TornTailOffset = tornTailOffset;
    }

    /// <summary>Complete lines in file order, without their newline.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Lines { get; }

    /// <summary>Bytes after the last newline (a line cut mid-write), or null.</summary>
    public byte[]? TornTail { get; }

    /// <summary>File offset where the torn tail starts (the length of the intact part).</summary>
    public long TornTailOffset { get; }

    /// <summary>1-based line number of the torn tail.</summary>
    public long TornLineNumber => Lines.Count + 1;

    /// <summary>Reads the whole log (its hash tree is over every line's exact bytes).</summary>
    /// <exception cref="InvalidDataException">The path is a folder or another file that is not a regular file (a pipe, a device, a socket), or the file is larger than an array can hold.</exception>
    public static LogFile Read(string path)
    {
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"{path} is a folder, not an audit log file.");
        }

        // Before it is opened: opening a named pipe for reading waits for a writer, and verify hung (review of session 59).
        if (DurableFile.NotRegularKind(path) is { } kind)
        {
            throw new InvalidDataException(NotRegularMessage(path, kind));
        }

        // The length of the open file (a symbolic link followed: FileInfo.Length is the link's own), and no more than it is
        // read: a link to a device without end (/dev/zero) made the reading run out of memory and abort the process (CLI
        // crash hunt, session 56); it reads as the empty file its size says.
        using FileStream file = File.OpenRead(path);
        long length = file.Length;
        if (length > Array.MaxLength)
        {
            // ReadAllBytes would fail with "The file is too long", naming no file; a log this size is not one this product
            // wrote (some 7 million lines), more likely a sparse or damaged file.
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"{path} is {length:N0} bytes, more than the {Array.MaxLength:N0} an audit log can be read in whole to check its hash tree: not a log this product wrote (a sparse or damaged file?)."));
        }

        byte[] data = new byte[length];
        int read = file.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        return Parse(read == data.Length ? data : data[..read]);
    }

    /// <summary>The message for a log path that is not a regular file (<paramref name="kind"/> as <see cref="DurableFile.NotRegularKind"/> names it).</summary>
    public static string NotRegularMessage(string path, string kind)
    {
        string link = File.ResolveLinkTarget(path, returnFinalTarget: true) is { } target ? $" (a link to {target.FullName})" : string.Empty;
        return $"{path}{link} is {kind}, not a regular file: not an audit log; it was not opened.";
    }

    public static LogFile Parse(byte[] data)
    {
        var lines = new List<ReadOnlyMemory<byte>>();
        int start = 0;
        while (start < data.Length)
        {
            int newline = Array.IndexOf(data, (byte)'\n', start);
            if (newline < 0)
            {
                return new LogFile(lines, data[start..], start);
            }

            lines.Add(new ReadOnlyMemory<byte>(data, start, newline - start));
            start = newline + 1;
        }

        return new LogFile(lines, null, data.Length);
    }
}
