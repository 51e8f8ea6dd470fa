namespace SecureFed.Audit.Internal;

/// <summary>The raw contents of an audit.jsonl held in memory: complete lines (without newlines) and a torn tail, if any.</summary>
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

    /// <summary>Splits log bytes already in memory (the files themselves are read line by line by <see cref="LogReader"/>).</summary>
    public static LogFile Parse(byte[] data)
    {
        int lastNewline = Array.LastIndexOf(data, (byte)'\n');
        int intact = lastNewline + 1;
        int lines = data.AsSpan(0, intact).Count((byte)'\n');
        return new LogFile(data, intact, lines, intact < data.Length ? data[intact..] : null);
    }
}
