using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;

using AesNi = System.Runtime.Intrinsics.X86.Aes;

namespace SecureFed.Crypto.Internal;

/// <summary>
/// Managed AES-256-CTR keystream with AES-NI for the mask PRG: the counter is the 128-bit big-endian block index
/// starting at 0, eight independent blocks are in flight per iteration (hides the AESENC latency), and each
/// keystream block is combined straight into the destination words (<c>&amp; mask</c>, modular add or subtract), so
/// no intermediate keystream buffer exists. Same output as AES-ECB over counter blocks (<see cref="AesCtrKeystream"/>).
/// </summary>
internal static unsafe class AesNiCtrKeystream
{
    /// <summary>AES-256 round keys (14 rounds + the initial whitening key).</summary>
    public const int RoundKeyCount = 15;

    private const int BlocksPerIteration = 8;
    private const int WordsPerBlock = 4;

    /// <summary>Whether the intrinsic path can run on this machine (AES-NI and SSSE3).</summary>
    public static bool IsSupported => AesNi.IsSupported && Ssse3.IsSupported;

    /// <summary>
    /// words[i] = Op(words[i], u32le(keystream[4i .. 4i+4)), mask) for the AES-256-CTR keystream under
    /// <paramref name="key"/> with counter blocks 0, 1, 2, ... The round keys are wiped before returning.
    /// </summary>
    public static void Apply<TOp>(ReadOnlySpan<byte> key, Span<uint> words, uint mask)
        where TOp : struct, IKeystreamWordOp
    {
        if (key.Length != 32)
        {
            throw new ArgumentException($"The AES-256 key is 32 bytes, got {key.Length}.", nameof(key));
        }

        if (!IsSupported)
        {
            throw new PlatformNotSupportedException("The AES-NI keystream needs AES-NI and SSSE3.");
        }

        Vector128<byte>* roundKeys = stackalloc Vector128<byte>[RoundKeyCount];
        try
        {
            ExpandKey256(key, roundKeys);
            fixed (uint* destination = words)
            {
                // words.Length < 2^31, so at most 2^29 blocks: the counter never leaves its low 32-bit lane.
                Run<TOp>(roundKeys, destination, (nuint)words.Length, mask);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(new Span<byte>(roundKeys, RoundKeyCount * 16));
        }
    }

    /// <summary>The AES-256 key schedule (FIPS 197 5.2) with AESKEYGENASSIST; writes 15 round keys.</summary>
    internal static void ExpandKey256(ReadOnlySpan<byte> key, Vector128<byte>* roundKeys)
    {
        Vector128<byte> k0 = Vector128.Create(key[..16]);
        Vector128<byte> k1 = Vector128.Create(key[16..32]);
        roundKeys[0] = k0;
        roundKeys[1] = k1;
        k0 = NextEven(k0, k1, 0x01);
        roundKeys[2] = k0;
        k1 = NextOdd(k1, k0);
        roundKeys[3] = k1;
        k0 = NextEven(k0, k1, 0x02);
        roundKeys[4] = k0;
        k1 = NextOdd(k1, k0);
        roundKeys[5] = k1;
        k0 = NextEven(k0, k1, 0x04);
        roundKeys[6] = k0;
        k1 = NextOdd(k1, k0);
        roundKeys[7] = k1;
        k0 = NextEven(k0, k1, 0x08);
        roundKeys[8] = k0;
        k1 = NextOdd(k1, k0);
        roundKeys[9] = k1;
        k0 = NextEven(k0, k1, 0x10);
        roundKeys[10] = k0;
        k1 = NextOdd(k1, k0);
        roundKeys[11] = k1;
        k0 = NextEven(k0, k1, 0x20);
        roundKeys[12] = k0;
        k1 = NextOdd(k1, k0);
        roundKeys[13] = k1;
        k0 = NextEven(k0, k1, 0x40);
        roundKeys[14] = k0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> NextEven(Vector128<byte> previous, Vector128<byte> last, [ConstantExpected] byte rcon)
    {
        // RotWord(SubWord(w[i-1])) ^ rcon, broadcast from dword 3 of the assist result.
        Vector128<byte> t = Sse2.Shuffle(AesNi.KeygenAssist(last, rcon).AsInt32(), 0xFF).AsByte();
        return PrefixXor(previous) ^ t;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> NextOdd(Vector128<byte> previous, Vector128<byte> last)
    {
        // SubWord(w[i-1]) without rotation or rcon, broadcast from dword 2 of the assist result.
        Vector128<byte> t = Sse2.Shuffle(AesNi.KeygenAssist(last, 0x00).AsInt32(), 0xAA).AsByte();
        return PrefixXor(previous) ^ t;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> PrefixXor(Vector128<byte> v)
    {
        // (w0, w0^w1, w0^w1^w2, w0^w1^w2^w3).
        v ^= Sse2.ShiftLeftLogical128BitLane(v, 4);
        v ^= Sse2.ShiftLeftLogical128BitLane(v, 4);
        v ^= Sse2.ShiftLeftLogical128BitLane(v, 4);
        return v;
    }

    // AggressiveOptimization: compiled fully optimised on first call. With tiering, the first ~1,000 calls ran Tier-0 /
    // OSR code (a client makes only ~500 calls per round) and even the final tier was ~30% slower than full opts.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TOp>(Vector128<byte>* rk, uint* words, nuint length, uint mask)
        where TOp : struct, IKeystreamWordOp
    {
        // Counter kept little-endian in lane 3 (lanes 0..2 are zero); the shuffle makes block j = u128be(j).
        Vector128<byte> toBigEndian = Vector128.Create((byte)0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 15, 14, 13, 12);
        Vector128<uint> counter = Vector128<uint>.Zero;
        Vector128<uint> m = Vector128.Create(mask);
        Vector128<byte> k0 = rk[0];
        nuint i = 0;

        for (; i + (BlocksPerIteration * WordsPerBlock) <= length; i += BlocksPerIteration * WordsPerBlock)
        {
            Vector128<byte> b0 = Ssse3.Shuffle(counter.AsByte(), toBigEndian) ^ k0;
            Vector128<byte> b1 = Ssse3.Shuffle((counter + Vector128.Create(0u, 0, 0, 1)).AsByte(), toBigEndian) ^ k0;
            Vector128<byte> b2 = Ssse3.Shuffle((counter + Vector128.Create(0u, 0, 0, 2)).AsByte(), toBigEndian) ^ k0;
            Vector128<byte> b3 = Ssse3.Shuffle((counter + Vector128.Create(0u, 0, 0, 3)).AsByte(), toBigEndian) ^ k0;
            Vector128<byte> b4 = Ssse3.Shuffle((counter + Vector128.Create(0u, 0, 0, 4)).AsByte(), toBigEndian) ^ k0;
            Vector128<byte> b5 = Ssse3.Shuffle((counter + Vector128.Create(0u, 0, 0, 5)).AsByte(), toBigEndian) ^ k0;
            Vector128<byte> b6 = Ssse3.Shuffle((counter + Vector128.Create(0u, 0, 0, 6)).AsByte(), toBigEndian) ^ k0;
            Vector128<byte> b7 = Ssse3.Shuffle((counter + Vector128.Create(0u, 0, 0, 7)).AsByte(), toBigEndian) ^ k0;
            counter += Vector128.Create(0u, 0, 0, BlocksPerIteration);

            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[1]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[2]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[3]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[4]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[5]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[6]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[7]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[8]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[9]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[10]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[11]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[12]);
            Round8(ref b0, ref b1, ref b2, ref b3, ref b4, ref b5, ref b6, ref b7, rk[13]);
            Vector128<byte> k14 = rk[14];
            b0 = AesNi.EncryptLast(b0, k14);
            b1 = AesNi.EncryptLast(b1, k14);
            b2 = AesNi.EncryptLast(b2, k14);
            b3 = AesNi.EncryptLast(b3, k14);
            b4 = AesNi.EncryptLast(b4, k14);
            b5 = AesNi.EncryptLast(b5, k14);
            b6 = AesNi.EncryptLast(b6, k14);
            b7 = AesNi.EncryptLast(b7, k14);

            uint* p = words + i;
            Emit<TOp>(p, b0, m);
            Emit<TOp>(p + 4, b1, m);
            Emit<TOp>(p + 8, b2, m);
            Emit<TOp>(p + 12, b3, m);
            Emit<TOp>(p + 16, b4, m);
            Emit<TOp>(p + 20, b5, m);
            Emit<TOp>(p + 24, b6, m);
            Emit<TOp>(p + 28, b7, m);
        }

        for (; i < length; i += WordsPerBlock)
        {
            Vector128<byte> block = EncryptBlock(rk, Ssse3.Shuffle(counter.AsByte(), toBigEndian));
            counter += Vector128.Create(0u, 0, 0, 1);
            if (i + WordsPerBlock <= length)
            {
                Emit<TOp>(words + i, block, m);
            }
            else
            {
                // Partial last block: 1 to 3 words, the rest of the block is discarded.
                Vector128<uint> ks = block.AsUInt32();
                for (nuint k = 0; i + k < length; k++)
                {
                    words[i + k] = TOp.Combine(words[i + k], ks.GetElement((int)k), mask);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Round8(
        ref Vector128<byte> b0, ref Vector128<byte> b1, ref Vector128<byte> b2, ref Vector128<byte> b3,
        ref Vector128<byte> b4, ref Vector128<byte> b5, ref Vector128<byte> b6, ref Vector128<byte> b7, Vector128<byte> k)
    {
        b0 = AesNi.Encrypt(b0, k);
        b1 = AesNi.Encrypt(b1, k);
        b2 = AesNi.Encrypt(b2, k);
        b3 = AesNi.Encrypt(b3, k);
        b4 = AesNi.Encrypt(b4, k);
        b5 = AesNi.Encrypt(b5, k);
        b6 = AesNi.Encrypt(b6, k);
        b7 = AesNi.Encrypt(b7, k);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> EncryptBlock(Vector128<byte>* rk, Vector128<byte> block)
    {
        block ^= rk[0];
        for (int r = 1; r < RoundKeyCount - 1; r++)
        {
            block = AesNi.Encrypt(block, rk[r]);
        }

        return AesNi.EncryptLast(block, rk[RoundKeyCount - 1]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Emit<TOp>(uint* destination, Vector128<byte> keystream, Vector128<uint> mask)
        where TOp : struct, IKeystreamWordOp
    {
        Vector128<uint> old = TOp.ReadsDestination ? Vector128.Load(destination) : default;
        Vector128.Store(TOp.Combine(old, keystream.AsUInt32(), mask), destination);
    }
}
