using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

using SecureFed.Crypto.Internal;

namespace SecureFed.Crypto;

/// <summary>
/// A window of the mask PRG (<see cref="MaskPrg"/>): words [offset, offset + window.Length) of the m-word stream for
/// (seed, domain, m, b), without computing the words before it. AES-CTR seeks by block counter: word i lives in
/// keystream block ⌊i/4⌋ at lane i mod 4, so the window starts at counter block ⌊offset/4⌋. Used by the aggregator
/// cluster, where each slice grain unmasks only its slice of the sum; the result equals the same words of the full
/// stream bit for bit (tests compare them).
/// </summary>
public static class MaskPrgWindow
{
    private const int WordsPerBlock = AesCtrKeystream.BlockSize / sizeof(uint);

    /// <summary>window[j] = (window[j] + PRG[offset + j]) mod 2^b, for the stream of <paramref name="length"/> words.</summary>
    /// <param name="seed">The 32-byte seed.</param>
    /// <param name="domain">Domain-separation bytes, as for <see cref="MaskPrg"/>.</param>
    /// <param name="bitWidth">b, 1 to 32.</param>
    /// <param name="length">m, the length of the whole stream (part of the key derivation).</param>
    /// <param name="offset">The index of the window's first word in the stream.</param>
    /// <param name="window">The words to update; offset + its length must not exceed m.</param>
    /// <exception cref="ArgumentException">The seed is not 32 bytes.</exception>
    /// <exception cref="ArgumentOutOfRangeException">b is outside 1..32, or the window does not lie inside the stream.</exception>
    public static void AddTo(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> domain, int bitWidth, int length, int offset, Span<uint> window)
        => Run(seed, domain, bitWidth, length, offset, window, subtract: false);

    /// <summary>window[j] = (window[j] - PRG[offset + j]) mod 2^b, for the stream of <paramref name="length"/> words.</summary>
    /// <inheritdoc cref="AddTo" path="/param"/>
    /// <inheritdoc cref="AddTo" path="/exception"/>
    public static void SubtractFrom(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> domain, int bitWidth, int length, int offset, Span<uint> window)
        => Run(seed, domain, bitWidth, length, offset, window, subtract: true);

    private static void Run(ReadOnlySpan<byte> seed, ReadOnlySpan<byte> domain, int bitWidth, int length, int offset, Span<uint> window, bool subtract)
    {
        if (seed.Length != MaskPrg.SeedSize)
        {
            throw new ArgumentException($"The mask PRG seed is {MaskPrg.SeedSize} bytes, got {seed.Length}.", nameof(seed));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(bitWidth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bitWidth, 32);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset, length);
        if (window.Length > length - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(window), $"A window of {window.Length} words at offset {offset} does not fit in a stream of {length} words.");
        }

        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("The mask PRG assumes a little-endian machine.");
        }

        if (window.IsEmpty)
        {
            return;
        }

        uint mask = ModularVector.Mask(bitWidth);
        Span<byte> key = stackalloc byte[32];
        MaskPrg.DeriveKey(seed, domain, length, bitWidth, key);
        Aes aes;
        try
        {
            aes = AesCtrKeystream.CreateAes(key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }

        byte[] scratch = ArrayPool<byte>.Shared.Rent(AesCtrKeystream.ChunkBytes);
        try
        {
            // The stream is consumed in whole blocks: the window's first block may start up to 3 words before it.
            int skip = offset % WordsPerBlock;
            UInt128 block = (UInt128)(uint)(offset / WordsPerBlock);
            int done = 0;
            const int ChunkWords = AesCtrKeystream.ChunkBytes / sizeof(uint);
            while (done < window.Length)
            {
                int words = Math.Min(ChunkWords - skip, window.Length - done);
                int blocks = (skip + words + WordsPerBlock - 1) / WordsPerBlock;
                Span<byte> keystream = scratch.AsSpan(0, blocks * AesCtrKeystream.BlockSize);
                AesCtrKeystream.FillCounterBlocks(block, keystream);
                aes.EncryptEcb(keystream, keystream, PaddingMode.None);
                ReadOnlySpan<uint> stream = MemoryMarshal.Cast<byte, uint>(keystream).Slice(skip, words);
                Span<uint> target = window.Slice(done, words);
                if (subtract)
                {
                    ModularVector.SubtractUnchecked(target, stream, mask);
                }
                else
                {
                    ModularVector.AddUnchecked(target, stream, mask);
                }

                done += words;
                block += (uint)blocks;
                skip = 0;
            }
        }
        finally
        {
            aes.Dispose();
            CryptographicOperations.ZeroMemory(scratch);
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }
}
