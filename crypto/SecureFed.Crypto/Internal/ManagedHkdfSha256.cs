using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace SecureFed.Crypto.Internal;

/// <summary>
/// HKDF-SHA256 (RFC 5869) over a managed SHA-256 (FIPS 180-4) for the short derivations of secure aggregation: two per
/// pairwise mask (the pair seed and the PRG key), i.e. one per peer on every client and two per (dropped, surviving)
/// pair on the aggregator. A managed call avoids the per-call set-up of the platform HKDF (an OpenSSL EVP_KDF fetch and
/// context on Linux), which costs several times the ~8 SHA-256 blocks a 32-byte derivation hashes. With an empty salt
/// (every hot call) the HMAC pads of the all-zero key are hashed once. Same output as
/// <see cref="HKDF.DeriveKey(HashAlgorithmName, ReadOnlySpan{byte}, Span{byte}, ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>
/// (tested on the RFC 5869 vectors and on random lengths against it). No table lookups, no data-dependent branches;
/// key-dependent scratch is wiped.
/// </summary>
internal static class ManagedHkdfSha256
{
    private const int BlockSize = 64;
    private const int HashSize = 32;

    private static readonly uint[] K =
    [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];

    private static readonly uint[] Initial = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

    /// <summary>HMAC states (inner, outer) after the pad block of the 32 zero-byte key (HKDF-Extract with an empty salt).</summary>
    private static readonly uint[] ZeroKeyPads = PadStates(new byte[HashSize]);

    /// <summary>Extract-then-Expand into <paramref name="output"/> (1 to 8160 bytes), exactly as RFC 5869.</summary>
    public static void DeriveKey(ReadOnlySpan<byte> ikm, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> info, Span<byte> output)
    {
        if (output.Length is < 1 or > 255 * HashSize)
        {
            throw new ArgumentException($"HKDF-SHA256 output must be 1 to {255 * HashSize} bytes, got {output.Length}.", nameof(output));
        }

        Span<uint> pads = stackalloc uint[16];
        Span<byte> prk = stackalloc byte[HashSize];
        Span<byte> block = stackalloc byte[HashSize];
        Span<byte> counter = stackalloc byte[1];
        try
        {
            // Extract: PRK = HMAC(salt or 32 zero bytes, ikm).
            if (salt.IsEmpty)
            {
                ZeroKeyPads.CopyTo(pads);
            }
            else
            {
                PadStates(salt, pads);
            }

            Hmac(pads, ikm, default, prk);

            // Expand: T(i) = HMAC(PRK, T(i-1) || info || i).
            PadStates(prk, pads);
            int written = 0;
            for (int i = 1; written < output.Length; i++)
            {
                counter[0] = (byte)i;
                Hmac(pads, i == 1 ? default : block, info, counter, block);
                int take = Math.Min(HashSize, output.Length - written);
                block[..take].CopyTo(output[written..]);
                written += take;
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(pads));
            CryptographicOperations.ZeroMemory(prk);
            CryptographicOperations.ZeroMemory(block);
        }
    }

    private static uint[] PadStates(ReadOnlySpan<byte> key)
    {
        var pads = new uint[16];
        PadStates(key, pads);
        return pads;
    }

    /// <summary>pads[0..8) = SHA-256 state after (K ⊕ ipad), pads[8..16) after (K ⊕ opad); keys over 64 bytes are hashed first.</summary>
    private static void PadStates(ReadOnlySpan<byte> key, Span<uint> pads)
    {
        Span<byte> k = stackalloc byte[BlockSize];
        k.Clear();
        try
        {
            if (key.Length > BlockSize)
            {
                SHA256.HashData(key, k);
            }
            else
            {
                key.CopyTo(k);
            }

            Span<byte> pad = stackalloc byte[BlockSize];
            for (int i = 0; i < BlockSize; i++)
            {
                pad[i] = (byte)(k[i] ^ 0x36);
            }

            Initial.CopyTo(pads[..8]);
            Compress(pads[..8], pad);
            for (int i = 0; i < BlockSize; i++)
            {
                pad[i] = (byte)(k[i] ^ 0x5c);
            }

            Initial.CopyTo(pads[8..]);
            Compress(pads[8..], pad);
            CryptographicOperations.ZeroMemory(pad);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(k);
        }
    }

    /// <summary>HMAC(key, a || b || c) into <paramref name="mac"/> (32 bytes), from the key's pad states.</summary>
    private static void Hmac(ReadOnlySpan<uint> pads, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> mac) =>
        Hmac(pads, a, b, default, mac);

    private static void Hmac(ReadOnlySpan<uint> pads, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c, Span<byte> mac)
    {
        Span<uint> state = stackalloc uint[8];
        Span<byte> inner = stackalloc byte[HashSize];
        pads[..8].CopyTo(state);
        Hash(state, BlockSize, a, b, c, inner);
        pads[8..].CopyTo(state);
        Hash(state, BlockSize, inner, default, default, mac);
        CryptographicOperations.ZeroMemory(inner);
        CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(state));
    }

    /// <summary>Finishes SHA-256 over a || b || c from <paramref name="state"/>, which has already absorbed <paramref name="prefixBytes"/> bytes.</summary>
    private static void Hash(Span<uint> state, long prefixBytes, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c, Span<byte> digest)
    {
        Span<byte> buffer = stackalloc byte[BlockSize];
        int filled = 0;
        long total = prefixBytes + a.Length + b.Length + c.Length;
        Absorb(state, buffer, ref filled, a);
        Absorb(state, buffer, ref filled, b);
        Absorb(state, buffer, ref filled, c);

        // Padding: 0x80, zeros, 64-bit big-endian bit length.
        buffer[filled++] = 0x80;
        if (filled > BlockSize - 8)
        {
            buffer[filled..].Clear();
            Compress(state, buffer);
            filled = 0;
        }

        buffer[filled..(BlockSize - 8)].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(buffer[(BlockSize - 8)..], (ulong)total * 8);
        Compress(state, buffer);
        for (int i = 0; i < 8; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(digest[(4 * i)..], state[i]);
        }

        CryptographicOperations.ZeroMemory(buffer);
    }

    private static void Absorb(Span<uint> state, Span<byte> buffer, ref int filled, ReadOnlySpan<byte> data)
    {
        if (filled > 0)
        {
            int take = Math.Min(BlockSize - filled, data.Length);
            data[..take].CopyTo(buffer[filled..]);
            filled += take;
            data = data[take..];
            if (filled < BlockSize)
            {
                return;
            }

            Compress(state, buffer);
            filled = 0;
        }

        while (data.Length >= BlockSize)
        {
            Compress(state, data[..BlockSize]);
            data = data[BlockSize..];
        }

        data.CopyTo(buffer);
        filled = data.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Compress(Span<uint> state, ReadOnlySpan<byte> block)
    {
        Span<uint> w = stackalloc uint[64];
        for (int i = 0; i < 16; i++)
        {
            w[i] = BinaryPrimitives.ReadUInt32BigEndian(block[(4 * i)..]);
        }

        for (int i = 16; i < 64; i++)
        {
            uint s0 = BitOperations.RotateRight(w[i - 15], 7) ^ BitOperations.RotateRight(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint s1 = BitOperations.RotateRight(w[i - 2], 17) ^ BitOperations.RotateRight(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }

        uint a = state[0], b = state[1], c = state[2], d = state[3], e = state[4], f = state[5], g = state[6], h = state[7];
        ReadOnlySpan<uint> k = K;
        for (int i = 0; i < 64; i++)
        {
            uint t1 = h + (BitOperations.RotateRight(e, 6) ^ BitOperations.RotateRight(e, 11) ^ BitOperations.RotateRight(e, 25))
                + ((e & f) ^ (~e & g)) + k[i] + w[i];
            uint t2 = (BitOperations.RotateRight(a, 2) ^ BitOperations.RotateRight(a, 13) ^ BitOperations.RotateRight(a, 22))
                + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }

        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(w));
    }
}
