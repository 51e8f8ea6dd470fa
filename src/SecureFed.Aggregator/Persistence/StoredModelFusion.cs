using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using SecureFed.Protocol;

namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// A <see cref="SumFusion"/> started run by run (<see cref="SumFusion(UpdateCodec, long, double, bool, ServerOptimizer?)"/>),
/// fed from the round store and writing out: each run of the sum is cut into blocks of at most
/// <see cref="BlockCoordinates"/> coordinates; a block's base coordinates are read from the base model's bytes (a stream
/// of little-endian float32, <see cref="AggregatorStore.OpenModel"/>) and its next coordinates are written to the next
/// model's stream (a staging file that <see cref="AggregatorStore.CompleteRoundWithModel(long, long, Stream, string, IReadOnlyList{string}, ServerOptimizerMoments?)"/>
/// then copies into the store). The aggregator thus holds two blocks (128 KiB), never a whole model, and the next model is
/// the in-memory fusion's bit for bit. Both byte streams are hashed as they pass: the base must be exactly the model's
/// size and hash to its recorded SHA-256 (else the round store is corrupt and the next model must not be stored), and
/// the next model's SHA-256 comes out of <see cref="Complete"/>.
/// </summary>
public sealed class StoredModelFusion : IDisposable
{
    /// <summary>Coordinates per block: 64 KiB of floats, a small object for the runtime.</summary>
    public const int BlockCoordinates = 1 << 14;

    private readonly SumFusion _fusion;
    private readonly Stream _base;
    private readonly string _baseSha256;
    private readonly string _baseName;
    private readonly Stream _next;
    private readonly IncrementalHash _baseHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly IncrementalHash _nextHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly float[] _baseBlock;
    private readonly float[] _nextBlock;
    private long _baseBytes;

    /// <summary>
    /// Fuses with <paramref name="fusion"/> (started run by run) from the base model's bytes <paramref name="baseModel"/>
    /// (read from its current position; its recorded SHA-256 <paramref name="baseSha256"/>; <paramref name="baseName"/>
    /// names it in errors) into <paramref name="next"/> (written from its current position). The streams stay the caller's.
    /// </summary>
    public StoredModelFusion(SumFusion fusion, Stream baseModel, string baseSha256, string baseName, Stream next)
    {
        ArgumentNullException.ThrowIfNull(fusion);
        ArgumentNullException.ThrowIfNull(baseModel);
        ArgumentException.ThrowIfNullOrWhiteSpace(baseSha256);
        ArgumentException.ThrowIfNullOrWhiteSpace(baseName);
        ArgumentNullException.ThrowIfNull(next);
        if (!baseModel.CanRead || !next.CanWrite)
        {
            throw new ArgumentException("The base model's stream must be readable and the next model's writable.", nameof(baseModel));
        }

        _fusion = fusion;
        _base = baseModel;
        _baseSha256 = baseSha256;
        _baseName = baseName;
        _next = next;
        int block = Math.Min(BlockCoordinates, Math.Max(1, fusion.ParameterCount));
        _baseBlock = new float[block];
        _nextBlock = new float[block];
    }

    /// <summary>Bytes of the next model written so far.</summary>
    public long NextBytesWritten { get; private set; }

    /// <summary>Takes the next run of the sum (a <see cref="SumPieceHandler"/>): in order, word 0 first, as <see cref="SumFusion.Add(int, ReadOnlySpan{uint})"/>.</summary>
    /// <exception cref="InvalidDataException">The base model's bytes end before the model's last coordinate.</exception>
    public void Add(int offset, ReadOnlySpan<uint> words)
    {
        int done = 0;
        do
        {
            int at = offset + done;
            int coordinates = _fusion.CoordinatesIn(at, Math.Min(_baseBlock.Length, words.Length - done));
            if (coordinates == 0)
            {
                _fusion.Add(at, words[done..], [], []); // the tail (weight and evaluation slots): no coordinates
                return;
            }

            Span<float> baseCoordinates = _baseBlock.AsSpan(0, coordinates);
            ReadBase(baseCoordinates);
            Span<float> nextCoordinates = _nextBlock.AsSpan(0, coordinates);
            _fusion.Add(at, words.Slice(done, coordinates), baseCoordinates, nextCoordinates);
            ReadOnlySpan<byte> bytes = WireEncoding.ModelBytesView(nextCoordinates);
            _next.Write(bytes);
            _nextHash.AppendData(bytes);
            NextBytesWritten += bytes.Length;
            done += coordinates;
        }
        while (done < words.Length);
    }

    /// <summary>
    /// Ends the fusion once every word of the sum came: checks that the base model's bytes ended with its last coordinate
    /// and hash to its recorded SHA-256, flushes the next model, and returns its SHA-256 (lower-case hex, as
    /// <see cref="ModelState.Digest"/>) and the sum's when the fusion computes it.
    /// </summary>
    /// <exception cref="InvalidOperationException">Words of the sum are missing.</exception>
    /// <exception cref="InvalidDataException">The base model's bytes are longer than the model or do not hash to its recorded SHA-256.</exception>
    public (string NextSha256, string? SumSha256) Complete()
    {
        string? sum = _fusion.CompleteRuns();
        if (_base.ReadByte() != -1)
        {
            throw new InvalidDataException(
                $"{_baseName} holds more than the model's {(long)_fusion.ParameterCount * sizeof(float)} bytes; the next model is not stored.");
        }

        string actual = Convert.ToHexStringLower(_baseHash.GetHashAndReset());
        if (!string.Equals(actual, _baseSha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidDataException(
                $"{_baseName} is corrupt: its recorded SHA-256 is {_baseSha256} but its bytes hash to {actual}; the next model is not stored.");
        }

        _next.Flush();
        return (Convert.ToHexStringLower(_nextHash.GetHashAndReset()), sum);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _baseHash.Dispose();
        _nextHash.Dispose();
    }

    private void ReadBase(Span<float> coordinates)
    {
        Span<byte> bytes = MemoryMarshal.AsBytes(coordinates);
        int read = _base.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
        _baseHash.AppendData(bytes[..read]);
        _baseBytes += read;
        if (read != bytes.Length)
        {
            throw new InvalidDataException(
                $"{_baseName} ends after {_baseBytes} bytes; the model has {(long)_fusion.ParameterCount * sizeof(float)}; the next model is not stored.");
        }

        if (!BitConverter.IsLittleEndian)
        {
            Span<int> words = MemoryMarshal.Cast<float, int>(coordinates);
            BinaryPrimitives.ReverseEndianness(words, words);
        }
    }
}
