using System.Security.Cryptography;

namespace SecureFed.Crypto;

/// <summary>
/// HKDF with HMAC-SHA256 (RFC 5869): <see cref="DeriveKey(ReadOnlySpan{byte}, ReadOnlySpan{byte}, ReadOnlySpan{byte}, Span{byte})"/>
/// over a managed SHA-256 (it runs once or twice per pairwise mask; see <c>Internal/ManagedHkdfSha256</c>), Extract and
/// Expand over <see cref="HKDF"/>. Both give the RFC's output (tested against each other and the RFC 5869 vectors).
/// </summary>
public static class HkdfSha256
{
    /// <summary>Length of the pseudorandom key produced by Extract (the SHA-256 output size).</summary>
    public const int HashSize = 32;

    /// <summary>The longest output HKDF-SHA256 can produce: 255 * 32 bytes.</summary>
    public const int MaxOutputLength = 255 * HashSize;

    /// <summary>Extract-then-Expand into <paramref name="output"/> (1 to 8160 bytes).</summary>
    /// <exception cref="ArgumentException">The output length is outside 1..8160.</exception>
    public static void DeriveKey(ReadOnlySpan<byte> ikm, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> info, Span<byte> output)
    {
        CheckOutputLength(output.Length);
        Internal.ManagedHkdfSha256.DeriveKey(ikm, salt, info, output);
    }

    /// <summary>Extract-then-Expand; returns <paramref name="length"/> bytes (1 to 8160).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The length is outside 1..8160.</exception>
    public static byte[] DeriveKey(ReadOnlySpan<byte> ikm, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> info, int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, MaxOutputLength);
        byte[] output = new byte[length];
        DeriveKey(ikm, salt, info, output);
        return output;
    }

    /// <summary>HKDF-Extract: writes the 32-byte PRK into <paramref name="prk"/> and returns 32. An empty salt means 32 zero bytes.</summary>
    /// <exception cref="ArgumentException"><paramref name="prk"/> is shorter than 32 bytes.</exception>
    public static int Extract(ReadOnlySpan<byte> ikm, ReadOnlySpan<byte> salt, Span<byte> prk)
    {
        if (prk.Length < HashSize)
        {
            throw new ArgumentException($"The PRK buffer must hold {HashSize} bytes, got {prk.Length}.", nameof(prk));
        }

        return HKDF.Extract(HashAlgorithmName.SHA256, ikm, salt, prk[..HashSize]);
    }

    /// <summary>HKDF-Extract; returns the 32-byte PRK.</summary>
    public static byte[] Extract(ReadOnlySpan<byte> ikm, ReadOnlySpan<byte> salt)
    {
        byte[] prk = new byte[HashSize];
        Extract(ikm, salt, prk);
        return prk;
    }

    /// <summary>HKDF-Expand of <paramref name="prk"/> (at least 32 bytes) into <paramref name="output"/> (1 to 8160 bytes).</summary>
    /// <exception cref="ArgumentException">The PRK is shorter than 32 bytes or the output length is outside 1..8160.</exception>
    public static void Expand(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info, Span<byte> output)
    {
        if (prk.Length < HashSize)
        {
            throw new ArgumentException($"An HKDF-SHA256 PRK is at least {HashSize} bytes, got {prk.Length}.", nameof(prk));
        }

        CheckOutputLength(output.Length);
        HKDF.Expand(HashAlgorithmName.SHA256, prk, output, info);
    }

    /// <summary>HKDF-Expand; returns <paramref name="length"/> bytes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The length is outside 1..8160.</exception>
    public static byte[] Expand(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info, int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, MaxOutputLength);
        byte[] output = new byte[length];
        Expand(prk, info, output);
        return output;
    }

    private static void CheckOutputLength(int length)
    {
        if (length is < 1 or > MaxOutputLength)
        {
            throw new ArgumentException($"HKDF-SHA256 output must be 1 to {MaxOutputLength} bytes, got {length}.", "output");
        }
    }
}
