using System.Globalization;

namespace SecureFed.Audit.Internal;

/// <summary>The raw contents of an audit.jsonl: complete lines (without newlines) and a torn tail, if any.</summary>
internal sealed class LogFile
{
    private readonly byte[] _data;
    private readonly int _intactLength;
    private List<ReadOnlyMemory<byte>>? _lines;

    private LogFile(byte[] data, int intactLength, int lineCount, byte[]? tornTail)
    {
        _data = data;
        _intactLength = intactLength;
        LineCount = lineCount;
        TornTail = tornTail;
    }

    /// <summary>
    /// Complete lines in file order, without their newline, as a list (built on first use: 16 bytes a line, which a log
    /// of blank lines makes many times its size; <see cref="EnumerateLines"/> reads them without keeping any).
    /// </summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Lines => _lines ??= [.. EnumerateLines()];

    /// <summary>The number of complete lines.</summary>
    public int LineCount { get; }

    /// <summary>Bytes after the last newline (a line cut mid-write), or null.</summary>
    public byte[]? TornTail { get; }

    /// <summary>File offset where the torn tail starts (the length of the intact part).</summary>
    public long TornTailOffset => _intactLength;

    /// <summary>1-based line number of the torn tail.</summary>
    public long TornLineNumber => LineCount + 1;

    /// <summary>Complete lines in file order, without their newline, one at a time: nothing is kept per line.</summary>
    public IEnumerable<ReadOnlyMemory<byte>> EnumerateLines()
    {
        int start = 0;
        while (start < _intactLength)
        {
            int newline = Array.IndexOf(_data, (byte)'\n', start, _intactLength - start);
            yield return new ReadOnlyMemory<byte>(_data, start, newline - start);
            start = newline + 1;
        }
    }

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
        string link = new FileInfo(path).LinkTarget is null ? string.Empty : $" (a link to {Federation.AtomicFile.FinalTarget(path)})";
        return $"{path}{link} is {kind}, not a regular file: not an audit log; it was not opened.";
    }

    public static LogFile Parse(byte[] data)
    {
        int lastNewline = Array.LastIndexOf(data, (byte)'\n');
        int intact = lastNewline + 1;
        int lines = data.AsSpan(0, intact).Count((byte)'\n');
        return new LogFile(data, intact, lines, intact < data.Length ? data[intact..] : null);
    }
}
