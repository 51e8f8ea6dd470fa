using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

using SecureFed.Crypto.Internal;

namespace SecureFed.Crypto;

/// <summary>
/// Shamir t-of-n secret sharing over GF(p), p = 2^61 - 1, per chunk.
/// </summary>
/// <remarks>
/// <para>A secret of L bytes is cut into ceil(L / 7) chunks of 7 bytes (56 bits, little-endian, the last chunk
/// zero-padded). Each chunk s is shared independently with its own random polynomial
/// f(x) = s + a_1 x + ... + a_(t-1) x^(t-1), the a_k uniform in [0, p) (rejection sampling from the random source).
/// A share value is the f(x) of every chunk, each 8 bytes little-endian. Any t shares reconstruct by Lagrange
/// interpolation at 0; any t - 1 shares are independent of the secret (perfect secrecy).</para>
/// <para>Reconstruction checks that every chunk is below 2^56 and that the padding bytes of the last chunk are zero,
/// which detects wrong or mixed-up shares with high probability (not always: use authenticated shares).</para>
/// </remarks>
public static class Shamir
{
    /// <summary>The field prime, 2^61 - 1.</summary>
    public const ulong Prime = (1UL << 61) - 1;

    /// <summary>Secret bytes per field element.</summary>
    public const int ChunkBytes = 7;

    /// <summary>Bytes per field element in a share value.</summary>
    public const int ElementBytes = 8;

    /// <summary>The largest number of shares per split.</summary>
    public const int MaxShares = 10_000;

    /// <summary>Number of field elements for a secret of <paramref name="secretLength"/> bytes.</summary>
    public static int ChunkCount(int secretLength) => (secretLength + ChunkBytes - 1) / ChunkBytes;

    /// <summary>Length in bytes of every share value for a secret of <paramref name="secretLength"/> bytes.</summary>
    public static int ShareValueLength(int secretLength) => ChunkCount(secretLength) * ElementBytes;

    /// <summary>Splits <paramref name="secret"/> into one share per x-coordinate, any <paramref name="threshold"/> of which reconstruct it.</summary>
    /// <param name="secret">The secret, at least one byte.</param>
    /// <param name="threshold">t, with 1 &lt; t &lt;= n.</param>
    /// <param name="xCoordinates">The n distinct, positive x-coordinates (n &lt;= 10 000).</param>
    /// <param name="random">The randomness for the polynomial coefficients (a CSPRNG in production).</param>
    /// <exception cref="ArgumentException">The secret is empty, t or n is out of range, or an x is zero, negative or repeated.</exception>
    public static ShamirShare[] Split(ReadOnlySpan<byte> secret, int threshold, ReadOnlySpan<int> xCoordinates, IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (secret.IsEmpty)
        {
            throw new ArgumentException("The secret to share is empty.", nameof(secret));
        }

        int n = xCoordinates.Length;
        if (threshold < 2)
        {
            throw new ArgumentException($"The threshold must be at least 2, got {threshold}.", nameof(threshold));
        }

        if (n < threshold)
        {
            throw new ArgumentException($"The threshold {threshold} exceeds the number of shares {n}.", nameof(threshold));
        }

        if (n > MaxShares)
        {
            throw new ArgumentException($"At most {MaxShares} shares are supported, got {n}.", nameof(xCoordinates));
        }

        CheckXCoordinates(xCoordinates, nameof(xCoordinates));

        int chunks = ChunkCount(secret.Length);
        int degree = threshold - 1;
        ulong[] coefficients = new ulong[chunks * degree];
        byte[][] values = new byte[n][];
        for (int i = 0; i < n; i++)
        {
            values[i] = new byte[chunks * ElementBytes];
        }

        Span<byte> chunkBytes = stackalloc byte[ElementBytes];
        try
        {
            SampleField(random, coefficients);
            for (int c = 0; c < chunks; c++)
            {
                chunkBytes.Clear();
                int start = c * ChunkBytes;
                secret.Slice(start, Math.Min(ChunkBytes, secret.Length - start)).CopyTo(chunkBytes);
                ulong s = BinaryPrimitives.ReadUInt64LittleEndian(chunkBytes);
                ReadOnlySpan<ulong> a = coefficients.AsSpan(c * degree, degree);
                for (int i = 0; i < n; i++)
                {
                    ulong x = (ulong)xCoordinates[i];
                    ulong y = a[degree - 1];
                    for (int k = degree - 2; k >= 0; k--)
                    {
                        y = MersenneField.Add(MersenneField.Multiply(y, x), a[k]);
                    }

                    y = MersenneField.Add(MersenneField.Multiply(y, x), s);
                    BinaryPrimitives.WriteUInt64LittleEndian(values[i].AsSpan(c * ElementBytes), y);
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(coefficients.AsSpan()));
            CryptographicOperations.ZeroMemory(chunkBytes);
        }

        var shares = new ShamirShare[n];
        for (int i = 0; i < n; i++)
        {
            shares[i] = new ShamirShare(xCoordinates[i], values[i]);
        }

        return shares;
    }

    /// <summary>Reconstructs a <paramref name="secretLength"/>-byte secret from the first <paramref name="threshold"/> of <paramref name="shares"/>.</summary>
    /// <exception cref="ArgumentException">Fewer than t shares, t &lt; 2, a zero/negative or duplicate x, a share value of
    /// the wrong length or holding a non-field element.</exception>
    /// <exception cref="CryptographicException">The reconstructed padding is not zero (wrong or inconsistent shares).</exception>
    public static byte[] Combine(IReadOnlyList<ShamirShare> shares, int threshold, int secretLength)
    {
        ArgumentNullException.ThrowIfNull(shares);
        ArgumentOutOfRangeException.ThrowIfLessThan(secretLength, 1);
        if (threshold < 2)
        {
            throw new ArgumentException($"The threshold must be at least 2, got {threshold}.", nameof(threshold));
        }

        if (shares.Count < threshold)
        {
            throw new ArgumentException($"Reconstruction needs at least {threshold} shares, got {shares.Count}.", nameof(shares));
        }

        int expectedLength = ShareValueLength(secretLength);
        var xs = new int[shares.Count];
        for (int i = 0; i < shares.Count; i++)
        {
            ShamirShare share = shares[i] ?? throw new ArgumentException($"Share {i} is null.", nameof(shares));
            if (share.Value is null || share.Value.Length != expectedLength)
            {
                throw new ArgumentException(
                    $"Share {i} (x = {share.X}) has a {share.Value?.Length ?? 0}-byte value; a {secretLength}-byte secret needs {expectedLength} bytes.",
                    nameof(shares));
            }

            xs[i] = share.X;
        }

        CheckXCoordinates(xs, nameof(shares));

        var reconstructor = new ShamirReconstructor(xs.AsSpan(0, threshold));
        var values = new ReadOnlyMemory<byte>[threshold];
        for (int i = 0; i < threshold; i++)
        {
            values[i] = shares[i].Value;
        }

        byte[] secret = new byte[secretLength];
        reconstructor.Reconstruct(values, secret);
        return secret;
    }

    internal static void CheckXCoordinates(ReadOnlySpan<int> xs, string parameterName)
    {
        var seen = new HashSet<int>(xs.Length);
        for (int i = 0; i < xs.Length; i++)
        {
            int x = xs[i];
            if (x <= 0)
            {
                throw new ArgumentException($"x-coordinate {i} is {x}; Shamir x-coordinates must be positive (x = 0 would reveal the secret).", parameterName);
            }

            if (!seen.Add(x))
            {
                throw new ArgumentException($"x-coordinate {x} appears more than once; x-coordinates must be distinct.", parameterName);
            }
        }
    }

    /// <summary>Fills <paramref name="destination"/> with independent uniform elements of [0, p) by rejection sampling.</summary>
    internal static void SampleField(IRandomSource random, Span<ulong> destination)
    {
        Span<byte> bytes = MemoryMarshal.AsBytes(destination);
        random.Fill(bytes);
        Span<byte> one = stackalloc byte[ElementBytes];
        for (int i = 0; i < destination.Length; i++)
        {
            // 61 uniform bits; reject the single value p (probability 2^-61).
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(bytes.Slice(i * ElementBytes, ElementBytes)) >> 3;
            while (v >= Prime)
            {
                random.Fill(one);
                v = BinaryPrimitives.ReadUInt64LittleEndian(one) >> 3;
            }

            destination[i] = v;
        }

        CryptographicOperations.ZeroMemory(one);
    }
}
