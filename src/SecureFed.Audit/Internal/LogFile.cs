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

    public static LogFile Read(string path)
    {
        byte[] data = File.ReadAllBytes(path);
        return Parse(data);
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
