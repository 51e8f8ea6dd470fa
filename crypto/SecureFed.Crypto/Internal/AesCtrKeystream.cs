using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Security.Cryptography;

namespace SecureFed.Crypto.Internal;

/// <summary>
/// AES-CTR keystream with a 128-bit big-endian counter, computed as AES-ECB over a buffer of pre-built counter blocks
/// (hardware AES through <see cref="SymmetricAlgorithm.EncryptEcb(ReadOnlySpan{byte}, Span{byte}, PaddingMode)"/>).
/// </summary>
internal static class AesCtrKeystream
{
    /// <summary>AES block size in bytes.</summary>
    public const int BlockSize = 16;

    /// <summary>Blocks encrypted per call to EncryptEcb (256 KiB: fewer calls amortise the per-call cost); a power of two so that chunk counters align.</summary>
    public const int ChunkBlocks = 16384;

    /// <summary>Bytes per chunk.</summary>
    public const int ChunkBytes = ChunkBlocks * BlockSize;

    // Counter blocks 0 .. ChunkBlocks-1 (big-endian). Chunk k's counters are these OR-ed with (k * ChunkBlocks),
    // whose low log2(ChunkBlocks) bits are zero, so the OR is an addition without carries.
    private static readonly byte[] s_template = BuildTemplate();

    private static byte[] BuildTemplate()
    {
        byte[] template = GC.AllocateUninitializedArray<byte>(ChunkBytes, pinned: false);
        for (int j = 0; j < ChunkBlocks; j++)
        {
            BinaryPrimitives.WriteUInt128BigEndian(template.AsSpan(j * BlockSize, BlockSize), (UInt128)j);
        }

        return template;
    }

    /// <summary>
    /// Writes the counter blocks <paramref name="firstBlock"/>, <paramref name="firstBlock"/> + 1, ... (128-bit
    /// big-endian, wrapping mod 2^128) into <paramref name="destination"/> (a whole number of blocks).
    /// </summary>
    public static void FillCounterBlocks(UInt128 firstBlock, Span<byte> destination)
    {
        int blocks = destination.Length / BlockSize;
        if ((firstBlock & (ChunkBlocks - 1)) == 0 && blocks <= ChunkBlocks)
        {
            FillAligned(firstBlock, destination[..(blocks * BlockSize)]);
            return;
        }

        UInt128 counter = firstBlock;
        for (int j = 0; j < blocks; j++)
        {
            BinaryPrimitives.WriteUInt128BigEndian(destination.Slice(j * BlockSize, BlockSize), counter);
            counter++;
        }
    }

    private static void FillAligned(UInt128 firstBlock, Span<byte> destination)
    {
        Span<byte> patternBytes = stackalloc byte[BlockSize];
        BinaryPrimitives.WriteUInt128BigEndian(patternBytes, firstBlock);
        Vector128<byte> pattern = Vector128.Create((ReadOnlySpan<byte>)patternBytes);
        ref byte src = ref MemoryMarshal.GetArrayDataReference(s_template);
        ref byte dst = ref MemoryMarshal.GetReference(destination);
        int length = destination.Length;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<byte> pattern2 = Vector256.Create(pattern, pattern);
            for (; i + 32 <= length; i += 32)
            {
                (Vector256.LoadUnsafe(ref src, (nuint)i) | pattern2).StoreUnsafe(ref dst, (nuint)i);
            }
        }

        for (; i < length; i += BlockSize)
        {
            (Vector128.LoadUnsafe(ref src, (nuint)i) | pattern).StoreUnsafe(ref dst, (nuint)i);
        }
    }

    /// <summary>
    /// Writes the AES-CTR keystream for <paramref name="key"/> starting at the 16-byte big-endian
    /// <paramref name="initialCounterBlock"/> into <paramref name="destination"/> (any length; a partial last block
    /// is truncated). This is the layer checked against NIST SP 800-38A F.5.5.
    /// </summary>
    public static void Generate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> initialCounterBlock, Span<byte> destination)
    {
        if (initialCounterBlock.Length != BlockSize)
        {
            throw new ArgumentException($"The initial counter block is {BlockSize} bytes, got {initialCounterBlock.Length}.", nameof(initialCounterBlock));
        }

        using Aes aes = CreateAes(key);
        Generate(aes, BinaryPrimitives.ReadUInt128BigEndian(initialCounterBlock), destination);
    }

    /// <summary>Creates an AES instance with <paramref name="key"/> (16, 24 or 32 bytes).</summary>
    public static Aes CreateAes(ReadOnlySpan<byte> key)
    {
        Aes aes = Aes.Create();
        try
        {
            aes.SetKey(key);
        }
        catch
        {
            aes.Dispose();
            throw;
        }

        return aes;
    }

    /// <summary>
    /// Keystream from counter <paramref name="counter"/> into <paramref name="destination"/>: the counter blocks are
    /// written into the destination itself and encrypted in place, one chunk per EncryptEcb call.
    /// </summary>
    public static void Generate(Aes aes, UInt128 counter, Span<byte> destination)
    {
        while (destination.Length >= BlockSize)
        {
            int blocks = Math.Min(destination.Length / BlockSize, ChunkBlocks);
            Span<byte> target = destination[..(blocks * BlockSize)];
            FillCounterBlocks(counter, target);
            aes.EncryptEcb(target, target, PaddingMode.None);
            destination = destination[target.Length..];
            counter += (uint)blocks;
        }

        if (!destination.IsEmpty)
        {
            // Partial last block: encrypt one block in scratch and truncate.
            Span<byte> one = stackalloc byte[BlockSize];
            FillCounterBlocks(counter, one);
            aes.EncryptEcb(one, one, PaddingMode.None);
            one[..destination.Length].CopyTo(destination);
            CryptographicOperations.ZeroMemory(one);
        }
    }
}
