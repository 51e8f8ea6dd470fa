using System.Globalization;

namespace SecureFed.Audit.Internal;

/// <summary>
/// One complete line of an audit.jsonl as <see cref="LogReader"/> reads it: its 1-based number, its bytes without the newline
/// (valid until the reader reads on; empty when <see cref="Oversize"/>), its length and its RFC 9162 leaf hash.
/// </summary>
internal readonly record struct LogLine(long Number, ReadOnlyMemory<byte> Bytes, long Length, byte[] LeafHash, bool Oversize)
{
    /// <summary>The problem of a line too long to be kept and parsed.</summary>
    public string OversizeProblem => string.Create(CultureInfo.InvariantCulture,
        $"line {Number} is {Length:N0} bytes, more than the {LogReader.MaxLineBytes:N0} a log line can be (no line the writer writes is): edited or corrupted?");
}
