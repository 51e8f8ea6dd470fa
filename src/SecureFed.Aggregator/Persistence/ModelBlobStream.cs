using Microsoft.Data.Sqlite;

namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// A model's bytes read with incremental blob I/O (<see cref="AggregatorStore.OpenModel"/>): read-only and seekable, so a
/// reader that needs the length (Npgsql's bytea parameter) streams it. Owns its connection.
/// </summary>
internal sealed class ModelBlobStream : Stream
{
    private readonly SqliteConnection _connection;
    private readonly SqliteBlob _blob;

    public ModelBlobStream(SqliteConnection connection, SqliteBlob blob)
    {
        _connection = connection;
        _blob = blob;
    }

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => _blob.Length;

    public override long Position
    {
        get => _blob.Position;
        set => _blob.Position = value;
    }

    public override int Read(byte[] buffer, int offset, int count) => _blob.Read(buffer, offset, count);

    public override int Read(Span<byte> buffer) => _blob.Read(buffer);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? Task.FromCanceled<int>(cancellationToken) : Task.FromResult(_blob.Read(buffer, offset, count));

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<int>(cancellationToken) : new(_blob.Read(buffer.Span));

    public override long Seek(long offset, SeekOrigin origin) => _blob.Seek(offset, origin);

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException("A stored model version is read-only.");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("A stored model version is read-only.");

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _blob.Dispose();
            _connection.Dispose();
        }

        base.Dispose(disposing);
    }
}
