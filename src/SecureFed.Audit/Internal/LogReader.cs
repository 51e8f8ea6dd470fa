using System.Security.Cryptography;

using Microsoft.Win32.SafeHandles;

namespace SecureFed.Audit.Internal;

/// <summary>
/// Reads an audit.jsonl line by line in bounded memory: one buffer of <see cref="BufferBytes"/> that grows only to hold the
/// longest line read, up to <see cref="MaxLineBytes"/> and its newline; a longer line is hashed as it streams past and not kept. The log
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
    /// Opens the log for reading. Refuses a folder and a file that is not a regular file (before it is opened: opening a
    /// named pipe for reading waits for a writer, and verify hung, review of session 59). A file of any length is read.
    /// </summary>
    /// <exception cref="InvalidDataException">The path is a folder or not a regular file; the message names it.</exception>
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
        // No bound on the file's length: it is read in chunks at long offsets (a 2 GiB cap, left from reading the file into
        // one array, refused the log of an aggregator that had written some 9.7 million lines: it could not reopen or verify
        // its own log).
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        try
        {
            return new LogReader(path, file, file.Length);
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
    /// far as that newline (<see cref="TornTailStart"/>), and the lines before it are counted in chunks. Null when the file
    /// ends with a newline (or is empty).
    /// </summary>
    public (long IntactLength, long LineCount)? FindTornTail()
    {
        if (TornTailStart() is not { } intact)
        {
            return null;
        }

        byte[] chunk = new byte[BufferBytes];
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
    /// The offset just after the file's last newline (0 if it has none) when bytes follow it, else null: read backwards
    /// from the end in chunks, only as far as that newline.
    /// </summary>
    public long? TornTailStart()
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

        return intact == _length ? null : intact;
    }

    /// <summary>
    /// Copies the bytes from <paramref name="offset"/> to <see cref="Length"/> (a torn tail) into <paramref name="path"/>
    /// durably in chunks (<see cref="Federation.AtomicFile"/>: a new temporary file of a unique name, fsync, rename), and
    /// returns their SHA-256. If the read or the write fails, no temporary file is left behind and <paramref name="path"/>
    /// is not created. (It wrote <c>path + ".tmp"</c> with FileMode.Create: a named pipe already there blocked the repair,
    /// and the temporary file stayed in quarantine/ when the log was cut during the copy.)
    /// </summary>
    /// <exception cref="InvalidDataException">The log was cut while it was read.</exception>
    /// <exception cref="IOException">The copy could not be written; the message names <paramref name="path"/>.</exception>
    public byte[] CopyTailTo(long offset, string path)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] chunk = new byte[BufferBytes];
        Federation.AtomicFile.Write(path, Federation.AtomicFile.PublicFileMode, stream =>
        {
            for (long at = offset; at < _length; at += chunk.Length)
            {
                int count = (int)Math.Min(chunk.Length, _length - at);
                ReadExactlyAt(chunk.AsSpan(0, count), at);
                hash.AppendData(chunk, 0, count);
                stream.Write(chunk, 0, count);
            }
        });

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

    /// <summary>Reads more of the file into the buffer: moves the pending part of a line to the front, grows the buffer up to <see cref="MaxLineBytes"/> + 1 (the line and its newline), or hashes a longer line on.</summary>
    private void Refill()
    {
        int pending = _end - _start;
        if (_oversize is not null)
        {
            _oversize.AppendData(_buffer, _start, pending);
            _oversizeLength += pending;
            _start = _scan = _end = 0;
        }
        else if (pending > MaxLineBytes)
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
            // Room for the longest line the writer writes and its newline: capped at MaxLineBytes, a line of exactly that
            // length filled the buffer without its newline and was named as too long (the writer wrote a line its own open
            // then refused).
            // (From half the limit straight to the limit and its newline: no 64 MiB step copied once more for one byte.)
            byte[] larger = new byte[_buffer.Length >= MaxLineBytes / 2 ? MaxLineBytes + 1 : _buffer.Length * 2];
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
