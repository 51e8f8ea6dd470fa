using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SecureFed.Crypto;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// One sender's chunk of one slice, written to local disk while its words are already in the slice's running sum, only
/// so that they can be subtracted again if the sender is not committed (docs/cluster.md §6). It holds masked words only
/// (what the slice grain adds into its sum anyway). On Unix its file is unlinked as soon as it is open (the handle keeps
/// the words; nothing is on disk by name, and a killed silo leaves nothing); elsewhere, or if that unlink failed, the file
/// is deleted when the spill is disposed, and files left by a killed silo when a silo starts on its port again
/// (<see cref="SliceSpillStore"/>).
/// </summary>
internal sealed class SliceSpill : IDisposable
{
    private const int PieceWords = 65_536;
    private readonly Stream _stream;
    private readonly string? _deleteOnDispose;
    private readonly Action? _disposed;
    private int _disposedFlag;

    public SliceSpill(Stream stream, string path)
        : this(stream, path, deleteOnDispose: null, disposed: null)
    {
    }

    /// <summary>A spill over <paramref name="stream"/>; <paramref name="deleteOnDispose"/>: a file name to delete after closing it (the fallback where it could not be unlinked while open).</summary>
    public SliceSpill(Stream stream, string path, string? deleteOnDispose, Action? disposed)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _stream = stream;
        Path = path;
        _deleteOnDispose = deleteOnDispose;
        _disposed = disposed;
    }

    /// <summary>Where the words are (for error messages).</summary>
    public string Path { get; }

    /// <summary>Words written so far.</summary>
    public int Words { get; private set; }

    /// <summary>Appends <paramref name="words"/> (little-endian u32).</summary>
    /// <exception cref="IOException">The words could not be written (the disk is full, the directory is gone).</exception>
    public async ValueTask AppendAsync(ReadOnlyMemory<uint> words, CancellationToken cancellationToken)
    {
        byte[] bytes = ArrayPool<byte>.Shared.Rent(4 * Math.Min(PieceWords, words.Length));
        try
        {
            for (int done = 0; done < words.Length;)
            {
                int count = Math.Min(PieceWords, words.Length - done);
                WriteLittleEndian(words.Span.Slice(done, count), bytes);
                await _stream.WriteAsync(bytes.AsMemory(0, 4 * count), cancellationToken).ConfigureAwait(false);
                done += count;
                Words += count;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    /// <summary>
    /// Subtracts the spilled words from <paramref name="sum"/> (mod 2^<paramref name="bitWidth"/>), the first spilled word
    /// from <paramref name="sum"/>[0]: exactly undoes the additions made while the words were spilled.
    /// </summary>
    /// <exception cref="IOException">The words could not be read back.</exception>
    public async ValueTask SubtractFromAsync(Memory<uint> sum, int bitWidth, CancellationToken cancellationToken)
    {
        await _stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        _stream.Position = 0;
        byte[] bytes = ArrayPool<byte>.Shared.Rent(4 * PieceWords);
        uint[] piece = ArrayPool<uint>.Shared.Rent(PieceWords);
        try
        {
            for (int done = 0; done < Words;)
            {
                int count = Math.Min(PieceWords, Words - done);
                await _stream.ReadExactlyAsync(bytes.AsMemory(0, 4 * count), cancellationToken).ConfigureAwait(false);
                for (int i = 0; i < count; i++)
                {
                    piece[i] = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4 * i));
                }

                ModularVector.Subtract(sum.Span.Slice(done, count), piece.AsSpan(0, count), bitWidth);
                done += count;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
            ArrayPool<uint>.Shared.Return(piece);
        }
    }

    private static void WriteLittleEndian(ReadOnlySpan<uint> words, Span<byte> bytes)
    {
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(words).CopyTo(bytes);
            return;
        }

        for (int i = 0; i < words.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes[(4 * i)..], words[i]);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposedFlag, 1) == 1)
        {
            return;
        }

        _stream.Dispose();
        if (_deleteOnDispose is not null)
        {
            try
            {
                File.Delete(_deleteOnDispose);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // left for the next start's clean-up (SliceSpillStore.DeleteStale)
            }
        }

        _disposed?.Invoke();
    }
}
