namespace SecureFed.Cluster.Lease;

/// <summary>
/// A read-only, seekable view of <c>length</c> bytes of a seekable stream from <c>start</c> on, which it owns: how one
/// moment of the server update rule's stream (the first, or the second) is sent as a bytea parameter of its own
/// (Npgsql sends a seekable stream's <see cref="Length"/> − <see cref="Position"/> bytes).
/// </summary>
internal sealed class StreamWindow : Stream
{
    private readonly Stream _inner;
    private readonly long _start;
    private long _position;

    /// <exception cref="ArgumentException">The stream cannot seek or read, or the window is not inside it.</exception>
    public StreamWindow(Stream inner, long start, long length)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (!inner.CanSeek || !inner.CanRead)
        {
            throw new ArgumentException("The stream must be readable and seekable.", nameof(inner));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (start + length > inner.Length)
        {
            throw new ArgumentException($"The window [{start}, {start + length}) is not inside the stream of {inner.Length} bytes.", nameof(length));
        }

        _inner = inner;
        _start = start;
        Length = length;
    }

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length { get; }

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
        long left = Length - _position;
        if (buffer.IsEmpty || left <= 0)
        {
            return 0;
        }

        _inner.Position = _start + _position;
        int read = _inner.Read(buffer[..(int)Math.Min(buffer.Length, left)]);
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

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
