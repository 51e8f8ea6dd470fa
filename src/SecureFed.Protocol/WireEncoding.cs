using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace SecureFed.Protocol;

/// <summary>
/// Byte encodings both sides must compute identically (docs/PROTOCOL.md §3 stage 2 and §5): the SHA-256 of a masked
/// input (its words as little-endian u32) and the little-endian float32 encoding of a model and its SHA-256.
/// </summary>
public static class WireEncoding
{
    /// <summary>SHA-256 of the words as little-endian u32.</summary>
    public static byte[] VectorDigest(ReadOnlySpan<uint> words)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AppendWords(hash, words);
        return hash.GetHashAndReset();
    }

    /// <summary>Appends the words to <paramref name="hash"/> as little-endian u32 (the encoding <see cref="VectorDigest"/> hashes), so a vector can be hashed run by run.</summary>
    public static void AppendWords(IncrementalHash hash, ReadOnlySpan<uint> words)
    {
        ArgumentNullException.ThrowIfNull(hash);
        if (BitConverter.IsLittleEndian)
        {
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(words));
            return;
        }

        Span<byte> block = stackalloc byte[4096];
        for (int offset = 0; offset < words.Length; offset += 1024)
        {
            int count = Math.Min(1024, words.Length - offset);
            for (int i = 0; i < count; i++)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(block[(i * 4)..], words[offset + i]);
            }

            hash.AppendData(block[..(count * 4)]);
        }
    }

    /// <summary>Little-endian float32 encoding of a model.</summary>
    public static byte[] ModelBytes(ReadOnlySpan<float> values)
    {
        byte[] bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        return bytes;
    }

    /// <summary>
    /// The bytes of <see cref="ModelBytes"/> without a copy where the machine is little-endian (the values' own memory,
    /// valid as long as <paramref name="values"/> is); a fresh encoding elsewhere.
    /// </summary>
    public static ReadOnlySpan<byte> ModelBytesView(ReadOnlySpan<float> values) =>
        BitConverter.IsLittleEndian ? MemoryMarshal.AsBytes(values) : ModelBytes(values);

    /// <summary>Lowercase hex SHA-256 of <see cref="ModelBytes"/>.</summary>
    public static string ModelDigest(ReadOnlySpan<float> values) => Convert.ToHexStringLower(SHA256.HashData(ModelBytesView(values)));
}
