using Microsoft.Data.Sqlite;

namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// A model's bytes read with incremental blob I/O (<see cref="AggregatorStore.OpenModel"/>): read-only and seekable, so a
/// reader that needs the length (Npgsql's bytea parameter) streams it. Owns its connection.
/// </summary>
/// <remarks>
/// The blob is opened for each read and closed after it, so the stream holds no read transaction between reads. A
/// download a site drains slowly (or not at all) would otherwise keep one SQLite snapshot open for as long as the call
/// lasts, and with it every WAL frame written since: the round store's WAL would grow by every later model version
/// until the disk filled. A stored version never changes; one removed while it is read (<c>KeepModelVersions</c>) ends
/// the next read with <see cref="InvalidOperationException"/>.
/// </remarks>
internal sealed class ModelBlobStream : Stream
{
    private readonly SqliteConnection _connection;
    private readonly long _version;
    private readonly string _path;
    private long _position;

    public ModelBlobStream(SqliteConnection connection, long version, string path)
    {
        _connection = connection;
        _version = version;
        _path = path;
        using SqliteBlob blob = Open();
        Length = blob.Length;
    }

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length { get; }

    public override long Position
    {
        get => _position;
        set => _position = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "The position cannot be negative.");
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty || _position >= Length)
        {
            return 0;
        }

        using SqliteBlob blob = Open();
        if (blob.Length != Length)
        {
            throw new InvalidOperationException($"Model version {_version} in '{_path}' changed length while it was read ({Length} bytes, now {blob.Length}).");
        }

        blob.Position = _position;
        int read;
        try
        {
            read = blob.Read(buffer);
        }
        catch (SqliteException ex)
        {
            // A damaged page under the blob (SQLite Error 11): named with the file, as the store's own reads are.
            throw AggregatorStore.Translate(ex, _path);
        }

        _position += read;
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? Task.FromCanceled<int>(cancellationToken) : Task.FromResult(Read(buffer, offset, count));

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<int>(cancellationToken) : new(Read(buffer.Span));

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            SeekOrigin.End => Length + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin), origin, "Not a seek origin."),
        };
        return _position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException("A stored model version is read-only.");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("A stored model version is read-only.");

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _connection.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <summary>The version's blob, open for one read (its read transaction ends when it is disposed).</summary>
    private SqliteBlob Open()
    {
        try
        {
            return new SqliteBlob(_connection, "models", "bytes", _version, readOnly: true);
        }
        catch (SqliteException ex)
        {
            if (AggregatorStore.Translate(ex, _path) is InvalidDataException corrupt)
            {
                throw corrupt;
            }

            throw new InvalidOperationException($"Model version {_version} is no longer in '{_path}' (removed while it was read: SecureFed:KeepModelVersions): {ex.Message}", ex);
        }
    }
}
