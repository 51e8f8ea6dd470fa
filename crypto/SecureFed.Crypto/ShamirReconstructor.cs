using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;

using SecureFed.Crypto.Internal;

namespace SecureFed.Crypto;

/// <summary>
/// Reconstructs many Shamir secrets for the same ordered set of x-coordinates: the Lagrange coefficients at 0 are
/// computed once (O(t^2)), then each secret costs O(t) multiplications per chunk. Used by the aggregator, which
/// recovers hundreds of seeds from the same surviving parties.
/// </summary>
public sealed class ShamirReconstructor
{
    private readonly ulong[] _lagrange;
    private readonly int[] _xs;

    /// <summary>Precomputes the Lagrange coefficients at 0 for exactly these x-coordinates, in this order.</summary>
    /// <exception cref="ArgumentException">The set is empty, or an x is zero, negative or repeated.</exception>
    public ShamirReconstructor(ReadOnlySpan<int> xCoordinates)
    {
        if (xCoordinates.IsEmpty)
        {
            throw new ArgumentException("At least one x-coordinate is needed.", nameof(xCoordinates));
        }

        Shamir.CheckXCoordinates(xCoordinates, nameof(xCoordinates));
        int t = xCoordinates.Length;
        _xs = xCoordinates.ToArray();
        _lagrange = new ulong[t];
        for (int i = 0; i < t; i++)
        {
            ulong xi = (ulong)_xs[i];
            ulong numerator = 1;
            ulong denominator = 1;
            for (int j = 0; j < t; j++)
            {
                if (j == i)
                {
                    continue;
                }

                ulong xj = (ulong)_xs[j];
                numerator = MersenneField.Multiply(numerator, xj);
                denominator = MersenneField.Multiply(denominator, MersenneField.Subtract(xj, xi));
            }

            _lagrange[i] = MersenneField.Multiply(numerator, MersenneField.Inverse(denominator));
        }
    }

    /// <summary>The number of shares each reconstruction takes (t).</summary>
    public int Count => _xs.Length;

    /// <summary>
    /// Reconstructs one secret into <paramref name="secret"/> (its length L fixes the value length, 8 * ceil(L / 7))
    /// from <paramref name="shareValues"/>, given in the same order as the x-coordinates.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong number of values, a value of the wrong length, or a non-field element.</exception>
    /// <exception cref="CryptographicException">The reconstructed padding is not zero; <paramref name="secret"/> is cleared.</exception>
    public void Reconstruct(IReadOnlyList<ReadOnlyMemory<byte>> shareValues, Span<byte> secret)
    {
        ArgumentNullException.ThrowIfNull(shareValues);
        if (shareValues.Count != _xs.Length)
        {
            throw new ArgumentException($"Expected {_xs.Length} share values (one per x-coordinate), got {shareValues.Count}.", nameof(shareValues));
        }

        if (secret.IsEmpty)
        {
            throw new ArgumentException("The secret buffer is empty.", nameof(secret));
        }

        int chunks = Shamir.ChunkCount(secret.Length);
        int valueLength = chunks * Shamir.ElementBytes;
        ulong[]? rented = null;
        Span<ulong> sums = chunks <= 64 ? stackalloc ulong[64] : (rented = ArrayPool<ulong>.Shared.Rent(chunks));
        sums = sums[..chunks];
        sums.Clear();
        try
        {
            for (int i = 0; i < _xs.Length; i++)
            {
                ReadOnlySpan<byte> value = shareValues[i].Span;
                if (value.Length != valueLength)
                {
                    throw new ArgumentException(
                        $"Share value {i} (x = {_xs[i]}) is {value.Length} bytes; a {secret.Length}-byte secret needs {valueLength}.",
                        nameof(shareValues));
                }

                ulong lambda = _lagrange[i];
                for (int c = 0; c < chunks; c++)
                {
                    ulong y = BinaryPrimitives.ReadUInt64LittleEndian(value.Slice(c * Shamir.ElementBytes, Shamir.ElementBytes));
                    if (y >= Shamir.Prime)
                    {
                        throw new ArgumentException(
                            $"Share value {i} (x = {_xs[i]}) holds {y} in element {c}, which is not below the field prime 2^61 - 1.",
                            nameof(shareValues));
                    }

                    sums[c] = MersenneField.Add(sums[c], MersenneField.Multiply(lambda, y));
                }
            }

            bool paddingOk = true;
            Span<byte> chunkBytes = stackalloc byte[Shamir.ElementBytes];
            for (int c = 0; c < chunks; c++)
            {
                ulong s = sums[c];
                paddingOk &= (s >> 56) == 0;
                BinaryPrimitives.WriteUInt64LittleEndian(chunkBytes, s);
                int start = c * Shamir.ChunkBytes;
                int take = Math.Min(Shamir.ChunkBytes, secret.Length - start);
                chunkBytes[..take].CopyTo(secret[start..]);
                for (int k = take; k < Shamir.ChunkBytes; k++)
                {
                    paddingOk &= chunkBytes[k] == 0;
                }
            }

            CryptographicOperations.ZeroMemory(chunkBytes);
            if (!paddingOk)
            {
                CryptographicOperations.ZeroMemory(secret);
                throw new CryptographicException(
                    "Shamir reconstruction produced non-zero padding: the shares are wrong, corrupted or from different secrets.");
            }
        }
        finally
        {
            sums.Clear();
            if (rented is not null)
            {
                ArrayPool<ulong>.Shared.Return(rented);
            }
        }
    }
}
