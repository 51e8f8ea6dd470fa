using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

using SecureFed.Crypto.Internal;

namespace SecureFed.Crypto;

/// <summary>
/// The mask PRG of secure aggregation: expands a 32-byte seed into a vector of m words modulo 2^b with AES-256-CTR.
/// </summary>
/// <remarks>
/// <para>Derivation, exactly (normative; repeated in docs/PROTOCOL.md):</para>
/// <list type="number">
/// <item><description>info = ASCII "securefed/v1/mask-prg" || u32be(len(domain)) || domain || u64be(m) || u8(b),
/// where m is the vector length in words and b the bit width.</description></item>
/// <item><description>key = HKDF-SHA256(ikm = seed, salt = empty, info), 32 bytes (RFC 5869).</description></item>
/// <item><description>keystream = AES-256-CTR under key with a 128-bit big-endian counter starting at 0, i.e. block j
/// of the keystream is AES-256(key, u128be(j)); the first block encrypts 16 zero bytes.</description></item>
/// <item><description>word i = u32le(keystream[4i .. 4i+4)) AND (2^b - 1). The modulus is a power of two, so every
/// word is exactly uniform in [0, 2^b).</description></item>
/// </list>
/// <para>Because m and b are in the key derivation, the same seed and domain give unrelated streams for different
/// vector lengths or bit widths. With AES-NI the keystream is computed by a managed AES-256-CTR (eight counter blocks
/// in flight) whose blocks are masked / added / subtracted straight into the destination words, with no intermediate
/// buffer; without AES-NI it is hardware AES-ECB (<c>Aes.EncryptEcb</c>) over counter blocks written in 256 KiB chunks
/// straight into the output (or a pooled scratch chunk) and encrypted in place, the masking / modular addition fused
/// over each cache-hot chunk with <c>Vector&lt;uint&gt;</c>. Both give identical output.</para>
/// </remarks>
public static class MaskPrg
{
    /// <summary>Required seed length in bytes.</summary>
    public const int SeedSize = 32;

    /// <summary>Keystream bytes produced per <c>Aes.EncryptEcb</c> call (256 KiB) on the fallback path; informational, for benchmarks.</summary>
    public const int ChunkBytes = AesCtrKeystream.ChunkBytes;

    private const string InfoPrefix = "securefed/v1/mask-prg";
    private const int StackInfoLimit = 256;

    /// <summary>What <see cref="Run"/> does with the PRG words.</summary>
    internal enum Mode
    {
        Overwrite,
        Add,
        Subtract,
    }

    /// <summary>Overwrites <paramref name="destination"/> with the PRG words (each in [0, 2^b)).</summary>
    /// <param name="seed">The 32-byte seed.</param>
    /// <param name="domain">Domain-separation bytes (purpose, session, round, ...); may be empty.</param>
    /// <param name="bitWidth">b, 1 to 32.</param>
    /// <param name="destination">The m words to write; m = its length is part of the derivation.</param>
    /// <exception cref="ArgumentException">The seed is not 32 bytes.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bitWidth"/> is outside 1..32.</exception>
    public static void Generate(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> domain, int bitWidth, Span<uint> destination)
        => Run(seed, domain, bitWidth, destination, Mode.Overwrite);

    /// <summary>accumulator[i] = (accumulator[i] + PRG[i]) mod 2^b; the accumulator's length is m.</summary>
    /// <inheritdoc cref="Generate" path="/exception"/>
    public static void AddTo(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> domain, int bitWidth, Span<uint> accumulator)
        => Run(seed, domain, bitWidth, accumulator, Mode.Add);

    /// <summary>accumulator[i] = (accumulator[i] - PRG[i]) mod 2^b; the accumulator's length is m.</summary>
    /// <inheritdoc cref="Generate" path="/exception"/>
    public static void SubtractFrom(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> domain, int bitWidth, Span<uint> accumulator)
        => Run(seed, domain, bitWidth, accumulator, Mode.Subtract);

    /// <summary>Derives the AES-256 key for (seed, domain, m, b) as documented on the type.</summary>
    internal static void DeriveKey(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> domain, int length, int bitWidth, Span<byte> key)
    {
        int infoLength = InfoPrefix.Length + 4 + domain.Length + 8 + 1;
        byte[]? rented = null;
        Span<byte> info = infoLength <= StackInfoLimit
            ? stackalloc byte[StackInfoLimit]
            : (rented = ArrayPool<byte>.Shared.Rent(infoLength));
        info = info[..infoLength];
        int offset = System.Text.Encoding.ASCII.GetBytes(InfoPrefix, info);
        BinaryPrimitives.WriteUInt32BigEndian(info[offset..], (uint)domain.Length);
        offset += 4;
        domain.CopyTo(info[offset..]);
        offset += domain.Length;
        BinaryPrimitives.WriteUInt64BigEndian(info[offset..], (ulong)length);
        offset += 8;
        info[offset] = (byte)bitWidth;

        ManagedHkdfSha256.DeriveKey(seed, ReadOnlySpan<byte>.Empty, info, key[..32]);
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// The PRG applied to <paramref name="words"/>; <paramref name="allowIntrinsics"/> = false forces the
    /// <c>Aes.EncryptEcb</c> path (both paths give identical output; tests compare them).
    /// </summary>
    internal static void Run(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> domain, int bitWidth, Span<uint> words, Mode mode, bool allowIntrinsics = true)
    {
        if (seed.Length != SeedSize)
        {
            throw new ArgumentException($"The mask PRG seed is {SeedSize} bytes, got {seed.Length}.", nameof(seed));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(bitWidth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bitWidth, 32);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("The mask PRG assumes a little-endian machine.");
        }

        uint mask = ModularVector.Mask(bitWidth);
        Span<byte> key = stackalloc byte[32];
        DeriveKey(seed, domain, words.Length, bitWidth, key);
        if (allowIntrinsics && AesNiCtrKeystream.IsSupported)
        {
            try
            {
                switch (mode)
                {
                    case Mode.Overwrite:
                        AesNiCtrKeystream.Apply<OverwriteWordOp>(key, words, mask);
                        break;
                    case Mode.Add:
                        AesNiCtrKeystream.Apply<AddWordOp>(key, words, mask);
                        break;
                    default:
                        AesNiCtrKeystream.Apply<SubtractWordOp>(key, words, mask);
                        break;
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(key);
            }

            return;
        }

        Aes aes;
        try
        {
            aes = AesCtrKeystream.CreateAes(key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }

        const int ChunkWords = AesCtrKeystream.ChunkBytes / sizeof(uint);
        byte[]? scratch = null;
        try
        {
            UInt128 block = 0;
            for (int offset = 0; offset < words.Length; offset += ChunkWords)
            {
                Span<uint> chunk = words.Slice(offset, Math.Min(ChunkWords, words.Length - offset));
                int blocks = (chunk.Length + 3) / 4;
                int blockBytes = blocks * AesCtrKeystream.BlockSize;

                if (mode == Mode.Overwrite && (chunk.Length & 3) == 0)
                {
                    // Write the counter blocks straight into the caller's buffer and encrypt them in place: the
                    // destination lines are touched once and stay in cache for the mask.
                    Span<byte> target = MemoryMarshal.AsBytes(chunk);
                    AesCtrKeystream.FillCounterBlocks(block, target);
                    aes.EncryptEcb(target, target, PaddingMode.None);
                    if (mask != uint.MaxValue)
                    {
                        ModularVector.AndInPlace(chunk, mask);
                    }
                }
                else
                {
                    scratch ??= ArrayPool<byte>.Shared.Rent(AesCtrKeystream.ChunkBytes);
                    Span<byte> keystream = scratch.AsSpan(0, blockBytes);
                    AesCtrKeystream.FillCounterBlocks(block, keystream);
                    aes.EncryptEcb(keystream, keystream, PaddingMode.None);
                    ReadOnlySpan<uint> stream = MemoryMarshal.Cast<byte, uint>(keystream)[..chunk.Length];
                    switch (mode)
                    {
                        case Mode.Overwrite:
                            stream.CopyTo(chunk);
                            ModularVector.AndInPlace(chunk, mask);
                            break;
                        case Mode.Add:
                            ModularVector.AddUnchecked(chunk, stream, mask);
                            break;
                        default:
                            ModularVector.SubtractUnchecked(chunk, stream, mask);
                            break;
                    }
                }

                block += (uint)blocks;
            }
        }
        finally
        {
            aes.Dispose();
            if (scratch is not null)
            {
                CryptographicOperations.ZeroMemory(scratch);
                ArrayPool<byte>.Shared.Return(scratch);
            }
        }
    }
}
