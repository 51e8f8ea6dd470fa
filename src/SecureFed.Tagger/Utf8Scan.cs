using System.Buffers;
using System.Globalization;
using System.Text;

namespace SecureFed.Tagger;

/// <summary>
/// Finds where bytes stop being UTF-8, for an error message that names the line: the strict decoder reads ahead in blocks,
/// so its exception says which bytes were wrong but not where they are. Run only after the decoder refused the bytes.
/// </summary>
internal static class Utf8Scan
{
    /// <summary>The first byte that does not begin a valid UTF-8 sequence, with its line and column (1-based, in characters).</summary>
    /// <param name="Line">The 1-based line (lines end at '\n').</param>
    /// <param name="Column">The 1-based character position in that line.</param>
    /// <param name="Offset">The byte offset in the stream (a byte order mark counts).</param>
    /// <param name="Value">The byte.</param>
    internal readonly record struct Position(long Line, long Column, long Offset, byte Value)
    {
        /// <summary>"line: ... (byte 0xE9 at column 4, byte offset 3)" parts for a message.</summary>
        public string Describe() => string.Create(CultureInfo.InvariantCulture, $"byte 0x{Value:X2} at column {Column}, byte offset {Offset}");
    }

    /// <summary>
    /// Reads <paramref name="stream"/> from where it is to its end and returns the first invalid position, or null when
    /// every byte is valid UTF-8 (a sequence cut off by the end of the stream is invalid at its first byte).
    /// </summary>
    public static Position? FirstInvalid(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long line = 1;
            long column = 1;
            long offset = 0; // of buffer[0]
            int kept = 0; // bytes of an incomplete sequence carried from the previous read
            while (true)
            {
                int read = stream.Read(buffer, kept, buffer.Length - kept);
                int length = kept + read;
                bool end = read == 0;
                int i = 0;
                while (i < length)
                {
                    OperationStatus status = Rune.DecodeFromUtf8(buffer.AsSpan(i, length - i), out Rune rune, out int consumed);
                    if (status == OperationStatus.NeedMoreData && !end)
                    {
                        break; // completed by the next read
                    }

                    if (status != OperationStatus.Done)
                    {
                        return new Position(line, column, offset + i, buffer[i]);
                    }

                    if (buffer[i] == (byte)'\n')
                    {
                        line++;
                        column = 1;
                    }
                    else if (offset + i > 0 || rune.Value != 0xFEFF)
                    {
                        column++; // a byte order mark takes no column
                    }

                    i += consumed;
                }

                if (end)
                {
                    return null;
                }

                kept = length - i;
                Array.Copy(buffer, i, buffer, 0, kept);
                offset += i;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
