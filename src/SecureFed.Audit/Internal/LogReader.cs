using System.Globalization;
using System.Security.Cryptography;

using Microsoft.Win32.SafeHandles;

namespace SecureFed.Audit.Internal;

/// <summary>
/// Reads an audit.jsonl line by line in bounded memory: one buffer of <see cref="BufferBytes"/> that grows only to hold the
/// longest line read, up to <see cref="MaxLineBytes"/>; a longer line is hashed as it streams past and not kept. The log
/// was read whole into an array on every open, <c>audit verify</c> and <c>audit prove</c>: memory grew with the log. No more
/// than the file's length when it was opened is read (a file growing under the reader is read as it was then).
/// </summary>
internal sealed class LogReader : IDisposable
{
    /// <summary>The size of the read buffer, and of each chunk a scan reads.</summary>
    public const int BufferBytes = 64 * 1024;

    /// <summary>
    /// The longest line kept to be parsed: far above any line the writer writes (<see cref="AuditLog"/> refuses one longer).
    /// A longer line is still hashed (the roots stay exact) but named as too long instead of parsed.
    /// </summary>
    public const int MaxLineBytes = 64 * 1024 * 1024;

    private readonly FileStream _file;
    private byte[] _buffer = new byte[BufferBytes];
    private long _length;
    private long _read;
    private int _start;
    private int _scan;
    private int _end;
    private IncrementalHash? _oversize;
    private long _oversizeLength;

    private LogReader(string path, FileStream file, long length)
    {
        Path = path;
        _file = file;
        _length = length;
    }

    /// <summary>The log file's path.</summary>
    public string Path { get; }

    /// <summary>The bytes this reader reads at most: the file's length when it was opened.</summary>
    public long Length => _length;

    /// <summary>Complete lines read so far.</summary>
    public long LineCount { get; private set; }

    /// <summary>File offset just after the last complete line read (after its newline).</summary>
    public long IntactLength { get; private set; }

    /// <summary>Whether <see cref="TryReadLine"/> returned false: every complete line was read.</summary>
    public bool AtEnd { get; private set; }

    /// <summary>Bytes after the last newline (a line cut mid-write), once <see cref="AtEnd"/>; 0 when none.</summary>
    public long TornLength => AtEnd ? _length - IntactLength : throw new InvalidOperationException("The log was not read to its end.");

    /// <summary>The capacity of the read buffer now (tests: it does not grow with the file).</summary>
    internal int BufferCapacity => _buffer.Length;

    /// <summary>
    /// Opens the log for reading. Refuses a folder, a file that is not a regular file (before it is opened: opening a named
    /// pipe for reading waits for a writer, and verify hung, review of session 59) and a file larger than
    /// <see cref="Array.MaxLength"/> bytes (not a log this product wrote).
    /// </summary>
    /// <exception cref="InvalidDataException">The path is a folder or not a regular file, or the file is too large; the message names it.</exception>
    public static LogReader Open(string path)
    {
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"{path} is a folder, not an audit log file.");
        }

        if (DurableFile.NotRegularKind(path) is { } kind)
        {
            throw new InvalidDataException(NotRegularMessage(path, kind));
        }

        // The length of the open file (a symbolic link followed: FileInfo.Length is the link's own), and no more than it is
        // read: a link to a device without end (/dev/zero) made the reading run out of memory and abort the process (CLI
        // crash hunt, session 56).
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        try
        {
            long length = file.Length;
            if (length > Array.MaxLength)
            {
                // A log this size is not one this product wrote (some 7 million lines), more likely a sparse or damaged file.
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"{path} is {length:N0} bytes, more than the {Array.MaxLength:N0} an audit log can be: not a log this product wrote (a sparse or damaged file?)."));
            }

            return new LogReader(path, file, length);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The message for a log path that is not a regular file (<paramref name="kind"/> as <see cref="DurableFile.NotRegularKind"/> names it).</summary>
    public static string NotRegularMessage(string path, string kind)
    {
        string link = new FileInfo(path).LinkTarget is null ? string.Empty : $" (a link to {Federation.AtomicFile.FinalTarget(path)})";
        return $"{path}{link} is {kind}, not a regular file: not an audit log; it was not opened.";
    }

    /// <summary>
    /// The next complete line (without its newline). Its bytes are valid until the next call: parse or copy them before.
    /// Returns false at the end of the complete lines; bytes after the last newline are <see cref="TornLength"/>.
    /// </summary>
    public bool TryReadLine(out LogLine line)
    {
        while (true)
        {
            int newline = _buffer.AsSpan(_scan, _end - _scan).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                int at = _scan + newline;
                int count = at - _start;
                long number = ++LineCount;
                if (_oversize is null)
                {
                    ReadOnlyMemory<byte> bytes = _buffer.AsMemory(_start, count);
                    line = new LogLine(number, bytes, count, MerkleTree.LeafHash(bytes.Span), Oversize: false);
                }
                else
                {
                    _oversize.AppendData(_buffer, _start, count);
                    line = new LogLine(number, ReadOnlyMemory<byte>.Empty, _oversizeLength + count, _oversize.GetHashAndReset(), Oversize: true);
                    _oversize.Dispose();
                    _oversize = null;
                    _oversizeLength = 0;
                }

                IntactLength += line.Length + 1;
                _start = _scan = at + 1;
                return true;
            }

            _scan = _end;
            if (_read == _length)
            {
                AtEnd = true;
                _oversize?.Dispose();
                _oversize = null;
                line = default;
                return false;
            }

            Refill();
        }
    }

    /// <summary>
    /// Where a torn tail starts, if the file has one: the backward search for the last newline reads from the end only as
    /// far as that newline, and the lines before it are counted in chunks. Null when the file ends with a newline (or is empty).
    /// </summary>
    public (long IntactLength, long LineCount)? FindTornTail()
    {
        byte[] chunk = new byte[BufferBytes];
        long position = _length;
        long intact = 0;
        while (position > 0)
        {
            int count = (int)Math.Min(chunk.Length, position);
            position -= count;
            ReadExactlyAt(chunk.AsSpan(0, count), position);
            int last = chunk.AsSpan(0, count).LastIndexOf((byte)'\n');
            if (last >= 0)
            {
                intact = position + last + 1;
                break;
            }
        }

        if (intact == _length)
        {
            return null;
        }

        long lines = 0;
        for (long offset = 0; offset < intact; offset += chunk.Length)
        {
            int count = (int)Math.Min(chunk.Length, intact - offset);
            ReadExactlyAt(chunk.AsSpan(0, count), offset);
            lines += chunk.AsSpan(0, count).Count((byte)'\n');
        }

        return (intact, lines);
    }

    /// <summary>
    /// Copies the bytes from <paramref name="offset"/> to <see cref="Length"/> (a torn tail) into <paramref name="path"/>
    /// durably (temporary file, fsync, rename) in chunks, and returns their SHA-256.
    /// </summary>
    public byte[] CopyTailTo(long offset, string path)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] chunk = new byte[BufferBytes];
        string temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            for (long at = offset; at < _length; at += chunk.Length)
            {
                int count = (int)Math.Min(chunk.Length, _length - at);
                ReadExactlyAt(chunk.AsSpan(0, count), at);
                hash.AppendData(chunk, 0, count);
                stream.Write(chunk, 0, count);
            }

            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        return hash.GetHashAndReset();
    }

    /// <summary>
    /// The number of complete lines of <paramref name="path"/> if every one of them ends with CR (a file converted to
    /// Windows line endings), else 0; stops at the first line that does not, so a log with LF endings costs one chunk.
    /// </summary>
    /// <exception cref="InvalidDataException">As <see cref="Open"/>.</exception>
    public static long CountIfEveryLineEndsWithCr(string path)
    {
        using LogReader reader = Open(path);
        byte[] chunk = reader._buffer;
        long lines = 0;
        bool lineEmpty = true;
        byte previous = 0;
        for (long offset = 0; offset < reader._length; offset += chunk.Length)
        {
            int count = (int)Math.Min(chunk.Length, reader._length - offset);
            count = reader.ReadAt(chunk.AsSpan(0, count), offset);
            if (count == 0)
            {
                break;
            }

            ReadOnlySpan<byte> span = chunk.AsSpan(0, count);
            int at = 0;
            while (at < span.Length)
            {
                int newline = span[at..].IndexOf((byte)'\n');
                if (newline < 0)
                {
                    lineEmpty = false;
                    previous = span[^1];
                    break;
                }

                int end = at + newline;
                bool empty = lineEmpty && end == at;
                byte last = end > at ? span[end - 1] : previous;
                if (empty || last != (byte)'\r')
                {
                    return 0;
                }

                lines++;
                lineEmpty = true;
                previous = (byte)'\n';
                at = end + 1;
            }
        }

        return lines;
    }

    public void Dispose()
    {
        _oversize?.Dispose();
        _oversize = null;
        _file.Dispose();
    }

    /// <summary>Reads more of the file into the buffer: moves the pending part of a line to the front, grows the buffer up to <see cref="MaxLineBytes"/>, or hashes a longer line on.</summary>
    private void Refill()
    {
        int pending = _end - _start;
        if (_oversize is not null)
        {
            _oversize.AppendData(_buffer, _start, pending);
            _oversizeLength += pending;
            _start = _scan = _end = 0;
        }
        else if (pending >= MaxLineBytes)
        {
            // Not kept: a line this long is none the writer wrote; its leaf hash SHA-256(0x00 || line) is taken as it streams.
            _oversize = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            _oversize.AppendData([0x00]);
            _oversize.AppendData(_buffer, _start, pending);
            _oversizeLength = pending;
            _start = _scan = _end = 0;
        }
        else if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, pending);
            _start = 0;
            _scan = _end = pending;
        }
        else if (_end == _buffer.Length)
        {
            byte[] larger = new byte[Math.Min(_buffer.Length * 2, MaxLineBytes)];
            Buffer.BlockCopy(_buffer, 0, larger, 0, _end);
            _buffer = larger;
        }

        int want = (int)Math.Min(_buffer.Length - _end, _length - _read);
        int read = ReadAt(_buffer.AsSpan(_end, want), _read);
        if (read == 0)
        {
            // The file was cut while it was read: it ends here, as a read of the whole file ended.
            _length = _read;
            return;
        }

        _end += read;
        _read += read;
    }

    private int ReadAt(Span<byte> destination, long offset)
    {
        SafeFileHandle handle = _file.SafeFileHandle;
        int total = 0;
        while (total < destination.Length)
        {
            int read = RandomAccess.Read(handle, destination[total..], offset + total);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        return total;
    }

    private void ReadExactlyAt(Span<byte> destination, long offset)
    {
        if (ReadAt(destination, offset) != destination.Length)
        {
            throw new InvalidDataException($"{Path} was cut while it was read; read it again.");
        }
    }
}
