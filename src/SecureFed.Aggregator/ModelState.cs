using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>
/// The current global model as the aggregator sees it: its version, its SHA-256 and its number of parameters. The values
/// themselves (a flat little-endian float32 vector in the tagger's documented flatten order) are in the round store only
/// (<see cref="Persistence.AggregatorStore.OpenModel"/>): downloads stream them from there and the fusion reads them
/// piecewise (<see cref="Persistence.StoredModelFusion"/>), so the aggregator never holds a whole model in memory. The
/// aggregator never needs the model's structure.
/// </summary>
public sealed class ModelState
{
    private readonly Lock _gate = new();
    private (long Version, string Sha256) _current;

    /// <summary>Creates the state of model <paramref name="version"/>.</summary>
    public ModelState(long version, int parameterCount, string sha256)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        ArgumentOutOfRangeException.ThrowIfLessThan(parameterCount, 1);
        ArgumentException.ThrowIfNullOrWhiteSpace(sha256);
        ParameterCount = parameterCount;
        _current = (version, sha256);
    }

    /// <summary>Model version (0 = the initial model).</summary>
    public long Version => Current.Version;

    /// <summary>SHA-256 (hex) of <see cref="ToBytes"/> of the values.</summary>
    public string Sha256 => Current.Sha256;

    /// <summary>The version and its SHA-256, read together.</summary>
    public (long Version, string Sha256) Current
    {
        get
        {
            lock (_gate)
            {
                return _current;
            }
        }
    }

    /// <summary>Number of parameters (the same for every version).</summary>
    public int ParameterCount { get; }

    /// <summary>Makes <paramref name="version"/> (stored in the round store) the current model.</summary>
    public void Update(long version, string sha256)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sha256);
        lock (_gate)
        {
            _current = (version, sha256);
        }
    }

    /// <summary>Little-endian float32 encoding (<see cref="WireEncoding.ModelBytes"/>).</summary>
    public static byte[] ToBytes(ReadOnlySpan<float> values) => WireEncoding.ModelBytes(values);

    /// <summary>Decodes a little-endian float32 vector; rejects a length that is not a multiple of 4 and non-finite values.</summary>
    public static float[] FromBytes(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.Length == 0 || bytes.Length % 4 != 0)
        {
            throw new InvalidDataException($"{source}: a model file holds little-endian float32 values; {bytes.Length} bytes is not a positive multiple of 4.");
        }

        float[] values = new float[bytes.Length / 4];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
            if (!float.IsFinite(values[i]))
            {
                throw new InvalidDataException($"{source}: value {i} is not finite.");
            }
        }

        return values;
    }

    /// <summary>
    /// As <see cref="FromBytes"/> on the bytes of the file at <paramref name="path"/>, read straight into the values
    /// where the machine is little-endian (no whole-file byte[] next to the model).
    /// </summary>
    public static float[] FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!BitConverter.IsLittleEndian)
        {
            return FromBytes(File.ReadAllBytes(path), path);
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        long length = stream.Length;
        if (length == 0 || length % 4 != 0 || length / 4 > Array.MaxLength)
        {
            throw new InvalidDataException($"{path}: a model file holds little-endian float32 values; {length} bytes is not a positive multiple of 4.");
        }

        float[] values = new float[length / 4];
        stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                throw new InvalidDataException($"{path}: value {i} is not finite.");
            }
        }

        return values;
    }

    /// <summary>
    /// Reads a model's bytes from <paramref name="bytes"/> (from its position to its end) a block at a time, without
    /// holding them: checks that they are a positive multiple of 4 and that every value is finite, and returns the number
    /// of values and their SHA-256 (as <see cref="Digest"/>). <paramref name="source"/> names them in errors.
    /// </summary>
    /// <exception cref="InvalidDataException">The length is not a positive multiple of 4, or a value is not finite.</exception>
    public static (int ParameterCount, string Sha256) Check(Stream bytes, string source)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        const int block = 1 << 14;
        float[] values = new float[block];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        while (true)
        {
            Span<byte> buffer = MemoryMarshal.AsBytes(values.AsSpan());
            int read = bytes.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            hash.AppendData(buffer[..read]);
            if (read % 4 != 0 || (read == 0 && total == 0) || total + read > (long)Array.MaxLength * 4)
            {
                throw new InvalidDataException($"{source}: a model file holds little-endian float32 values; {total + read} bytes or more is not a positive multiple of 4.");
            }

            Span<float> got = values.AsSpan(0, read / 4);
            if (!BitConverter.IsLittleEndian)
            {
                Span<int> words = MemoryMarshal.Cast<float, int>(got);
                BinaryPrimitives.ReverseEndianness(words, words);
            }

            for (int i = 0; i < got.Length; i++)
            {
                if (!float.IsFinite(got[i]))
                {
                    throw new InvalidDataException($"{source}: value {(total / 4) + i} is not finite.");
                }
            }

            total += read;
            if (read < buffer.Length)
            {
                return ((int)(total / 4), Convert.ToHexStringLower(hash.GetHashAndReset()));
            }
        }
    }

    /// <summary>
    /// Reads exactly <paramref name="values"/>.Length little-endian float32 values from <paramref name="bytes"/> into
    /// <paramref name="values"/>.
    /// </summary>
    /// <exception cref="EndOfStreamException">The stream ends first.</exception>
    public static void ReadValues(Stream bytes, Span<float> values)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        bytes.ReadExactly(MemoryMarshal.AsBytes(values));
        if (!BitConverter.IsLittleEndian)
        {
            Span<int> words = MemoryMarshal.Cast<float, int>(values);
            BinaryPrimitives.ReverseEndianness(words, words);
        }
    }

    /// <summary>SHA-256 hex of the encoded values.</summary>
    public static string Digest(ReadOnlySpan<float> values) => WireEncoding.ModelDigest(values);
}
