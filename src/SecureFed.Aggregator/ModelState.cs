using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>
/// The current global model as the aggregator sees it: a flat little-endian float32 vector (the tagger's documented
/// flatten order), its version and SHA-256. The aggregator never needs the model's structure.
/// </summary>
public sealed class ModelState
{
    private readonly object _gate = new();

    /// <summary>Creates the state.</summary>
    public ModelState(long version, float[] values, string sha256)
    {
        ArgumentNullException.ThrowIfNull(values);
        Version = version;
        Values = values;
        Sha256 = sha256;
    }

    /// <summary>Model version (0 = the initial model).</summary>
    public long Version { get; private set; }

    /// <summary>The parameters.</summary>
    public float[] Values { get; private set; }

    /// <summary>SHA-256 (hex) of <see cref="ToBytes"/> of the values.</summary>
    public string Sha256 { get; private set; }

    /// <summary>Number of parameters.</summary>
    public int ParameterCount => Values.Length;

    /// <summary>Replaces the model.</summary>
    public void Update(long version, float[] values, string sha256)
    {
        lock (_gate)
        {
            Version = version;
            Values = values;
            Sha256 = sha256;
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

    /// <summary>SHA-256 hex of the encoded values.</summary>
    public static string Digest(ReadOnlySpan<float> values) => WireEncoding.ModelDigest(values);
}
