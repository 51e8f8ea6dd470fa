using Microsoft.Data.Sqlite;

namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// The server update rule's two moments read as one stream, the first then the second, with incremental blob I/O
/// (<see cref="AggregatorStore.OpenServerOptimizer"/>): read-only and seekable, so a reader that needs the length
/// (Npgsql's bytea parameter) streams it. Owns its connection.
/// </summary>
internal sealed class MomentsBlobStream : Stream
{
    private readonly SqliteConnection _connection;
    private readonly SqliteBlob _first;
    private readonly SqliteBlob _second;
    private readonly string _path;
    private long _position;

    public MomentsBlobStream(SqliteConnection connection, SqliteBlob first, SqliteBlob second, string path)
    {
        _connection = connection;
        _first = first;
        _second = second;
        _path = path;
    }

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => _first.Length + _second.Length;

    public override long Position
    {
        get => _position;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _position = value;
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty || _position >= Length)
        {
            return 0;
        }

        // One blob per call: a read never spans the two moments.
        SqliteBlob blob = _position < _first.Length ? _first : _second;
        long at = blob == _first ? _position : _position - _first.Length;
        blob.Position = at;
        int read;
        try
        {
            read = blob.Read(buffer[..(int)Math.Min(buffer.Length, blob.Length - at)]);
        }
        catch (SqliteException ex)
        {
            // A damaged page under a moment: named with the file, as the store's own reads are (and ModelBlobStream's).
            throw AggregatorStore.Translate(ex, _path);
        }

        _position += read;
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? Task.FromCanceled<int>(cancellationToken) : Task.FromResult(Read(buffer.AsSpan(offset, count)));

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<int>(cancellationToken) : new(Read(buffer.Span));

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => Length + offset,
        };
        return _position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException("Saved moments are read-only.");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("Saved moments are read-only.");

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _first.Dispose();
            _second.Dispose();
            _connection.Dispose();
        }

        base.Dispose(disposing);
    }
}
