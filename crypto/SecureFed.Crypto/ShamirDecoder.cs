using System.Buffers.Binary;
using System.Security.Cryptography;

using SecureFed.Crypto.Internal;

namespace SecureFed.Crypto;

/// <summary>
/// Rebuilds a Shamir secret from more than t shares when some of them may be wrong: the shares of each chunk are a
/// Reed–Solomon codeword over GF(2^61 - 1), so n shares with threshold t detect up to n − t wrong ones and correct up to
/// ⌊(n − t) / 2⌋ (Berlekamp–Welch). With a <see cref="SecretVerifier"/> (a commitment or public key fixed before the
/// shares were revealed) a rebuilt secret is accepted only when it verifies, and when unique decoding fails the
/// decoder searches t-subsets of the shares for one whose secret verifies, which corrects up to n − t wrong shares in
/// small cohorts. Every share that is not on the accepted polynomial is reported, so the caller can name who lied.
/// </summary>
public static class ShamirDecoder
{
    /// <summary>The default number of t-subsets tried when unique decoding fails and a verifier is given.</summary>
    public const int DefaultSubsetBudget = 4096;

    /// <summary>⌊(n − t) / 2⌋: the number of wrong shares Berlekamp–Welch corrects among <paramref name="shares"/> with threshold t.</summary>
    public static int CorrectableErrors(int shares, int threshold) => Math.Max(0, (shares - threshold) / 2);

    /// <summary>The index of the first 8-byte element of <paramref name="value"/> that is not below 2^61 − 1, or −1.</summary>
    public static int FirstNonFieldElement(ReadOnlySpan<byte> value)
    {
        for (int c = 0; c + Shamir.ElementBytes <= value.Length; c += Shamir.ElementBytes)
        {
            if (BinaryPrimitives.ReadUInt64LittleEndian(value.Slice(c, Shamir.ElementBytes)) >= Shamir.Prime)
            {
                return c / Shamir.ElementBytes;
            }
        }

        return -1;
    }

    /// <summary>
    /// Rebuilds a <paramref name="secretLength"/>-byte secret from <paramref name="shares"/>, tolerating wrong ones.
    /// </summary>
    /// <param name="shares">At least t shares with distinct positive x; malformed values (wrong length, an element
    /// ≥ 2^61 − 1) are treated as missing and reported as rejected.</param>
    /// <param name="threshold">t ≥ 2.</param>
    /// <param name="secretLength">L ≥ 1.</param>
    /// <param name="verifier">Optional check of the rebuilt secret; when given, only a verifying secret is returned.</param>
    /// <param name="maxSubsets">How many t-subsets to try when unique decoding fails (only with a verifier).</param>
    /// <exception cref="ArgumentException">t &lt; 2, L &lt; 1, or an x is zero, negative or repeated.</exception>
    /// <exception cref="ShamirDecodingException">Fewer than t well-formed shares, or no secret (that verifies) is
    /// consistent with enough of them.</exception>
    public static ShamirDecoding Decode(IReadOnlyList<ShamirShare> shares, int threshold, int secretLength, SecretVerifier? verifier = null, int maxSubsets = DefaultSubsetBudget)
    {
        ArgumentNullException.ThrowIfNull(shares);
        ArgumentOutOfRangeException.ThrowIfLessThan(secretLength, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxSubsets);
        if (threshold < 2)
        {
            throw new ArgumentException($"The threshold must be at least 2, got {threshold}.", nameof(threshold));
        }

        int[] allXs = new int[shares.Count];
        for (int i = 0; i < shares.Count; i++)
        {
            allXs[i] = (shares[i] ?? throw new ArgumentException($"Share {i} is null.", nameof(shares))).X;
        }

        Shamir.CheckXCoordinates(allXs, nameof(shares));
        int chunks = Shamir.ChunkCount(secretLength);
        int valueLength = chunks * Shamir.ElementBytes;
        var rejected = new SortedSet<int>();
        var good = new List<ShamirShare>(shares.Count);
        foreach (ShamirShare share in shares)
        {
            if (share.Value is null || share.Value.Length != valueLength || FirstNonFieldElement(share.Value) >= 0)
            {
                rejected.Add(share.X);
            }
            else
            {
                good.Add(share);
            }
        }

        int n = good.Count;
        if (n < threshold)
        {
            throw new ShamirDecodingException(
                $"Only {n} of the {shares.Count} shares are well-formed ({valueLength}-byte values of field elements below 2^61 - 1); t = {threshold}.");
        }

        ulong[] xs = new ulong[n];
        ulong[][] ys = new ulong[chunks][];
        for (int c = 0; c < chunks; c++)
        {
            ys[c] = new ulong[n];
        }

        for (int i = 0; i < n; i++)
        {
            xs[i] = (ulong)good[i].X;
            for (int c = 0; c < chunks; c++)
            {
                ys[c][i] = BinaryPrimitives.ReadUInt64LittleEndian(good[i].Value.AsSpan(c * Shamir.ElementBytes));
            }
        }

        byte[] secret = new byte[secretLength];
        bool[] off = new bool[n];
        try
        {
            UniqueDecoding unique = TryUniqueDecode(xs, ys, threshold, secret, off);
            bool decoded = unique == UniqueDecoding.Secret;
            if (decoded && (verifier is null || verifier(secret)))
            {
                return Result(secret, good, off, rejected);
            }

            CryptographicOperations.ZeroMemory(secret);
            int tried = 0;
            if (verifier is not null)
            {
                int[] subset = [.. Enumerable.Range(0, threshold)];
                ulong[] subsetXs = new ulong[threshold];
                while (tried < maxSubsets)
                {
                    tried++;
                    for (int j = 0; j < threshold; j++)
                    {
                        subsetXs[j] = xs[subset[j]];
                    }

                    if (TryInterpolate(subsetXs, subset, ys, secret) && verifier(secret))
                    {
                        MarkOffPolynomial(xs, ys, subset, subsetXs, off);
                        return Result(secret, good, off, rejected);
                    }

                    CryptographicOperations.ZeroMemory(secret);
                    if (!NextCombination(subset, n))
                    {
                        break;
                    }
                }
            }

            // With more than t shares, one polynomial within ⌊(n − t) / 2⌋ corrections is the dealt one unless more shares
            // than that are wrong; with exactly t shares any values fit some polynomial, so that says nothing.
            bool consistent = n > threshold && unique != UniqueDecoding.Undecodable;
            string why = unique switch
            {
                UniqueDecoding.Secret => $"the secret decoded from the {n} well-formed shares fails verification",
                UniqueDecoding.NotASecret => $"the {n} well-formed shares lie on one polynomial of degree below {threshold} (with at most {CorrectableErrors(n, threshold)} of them corrected) whose constant is not a {secretLength}-byte secret (non-zero padding)",
                _ => $"the {n} well-formed shares do not lie on one polynomial of degree below {threshold} with at most {CorrectableErrors(n, threshold)} of them wrong",
            };
            throw new ShamirDecodingException(verifier is null
                ? why + "."
                : $"{why}, and none of the {tried} subsets of {threshold} shares tried rebuilds a secret that verifies.")
            {
                Consistent = consistent,
            };
        }
        catch
        {
            CryptographicOperations.ZeroMemory(secret);
            throw;
        }
    }

    private static ShamirDecoding Result(byte[] secret, List<ShamirShare> good, bool[] off, SortedSet<int> rejected)
    {
        for (int i = 0; i < off.Length; i++)
        {
            if (off[i])
            {
                rejected.Add(good[i].X);
            }
        }

        return new ShamirDecoding(secret, [.. rejected]);
    }

    /// <summary>
    /// Per chunk: the parity check, then Berlekamp–Welch when it fails. <see cref="UniqueDecoding.Undecodable"/> when some
    /// chunk cannot be decoded; <see cref="UniqueDecoding.NotASecret"/> when every chunk decodes but some constant is not a
    /// secret chunk (at least 2^56, or non-zero padding).
    /// </summary>
    private static UniqueDecoding TryUniqueDecode(ulong[] xs, ulong[][] ys, int t, Span<byte> secret, bool[] off)
    {
        bool valid = true;
        int n = xs.Length;
        ulong[]? weights = n > t ? ReedSolomon.DualWeights(xs) : null;
        ulong[]? lagrange = null;
        for (int c = 0; c < ys.Length; c++)
        {
            ulong value;
            if (weights is null || ReedSolomon.IsCodeword(xs, ys[c], weights, t))
            {
                lagrange ??= LagrangeAt(0, xs.AsSpan(0, t));
                value = 0;
                for (int j = 0; j < t; j++)
                {
                    value = MersenneField.Add(value, MersenneField.Multiply(lagrange[j], ys[c][j]));
                }
            }
            else
            {
                int e = CorrectableErrors(n, t);
                ulong[]? polynomial = e == 0 ? null : ReedSolomon.Decode(xs, ys[c], t, e);
                if (polynomial is null)
                {
                    return UniqueDecoding.Undecodable;
                }

                value = polynomial[0];
                for (int i = 0; i < n; i++)
                {
                    off[i] |= ReedSolomon.Evaluate(polynomial, xs[i]) != ys[c][i];
                }
            }

            // Go on with the other chunks: whether all of them decode tells a wrong secret from undecodable shares.
            valid &= WriteChunk(value, c, secret);
        }

        return valid ? UniqueDecoding.Secret : UniqueDecoding.NotASecret;
    }

    private static bool TryInterpolate(ulong[] subsetXs, int[] subset, ulong[][] ys, Span<byte> secret)
    {
        ulong[] lagrange = LagrangeAt(0, subsetXs);
        for (int c = 0; c < ys.Length; c++)
        {
            ulong value = 0;
            for (int j = 0; j < subset.Length; j++)
            {
                value = MersenneField.Add(value, MersenneField.Multiply(lagrange[j], ys[c][subset[j]]));
            }

            if (!WriteChunk(value, c, secret))
            {
                return false;
            }
        }

        return true;
    }

    private static void MarkOffPolynomial(ulong[] xs, ulong[][] ys, int[] subset, ulong[] subsetXs, bool[] off)
    {
        Array.Clear(off);
        var inSubset = new HashSet<int>(subset);
        for (int i = 0; i < xs.Length; i++)
        {
            if (inSubset.Contains(i))
            {
                continue;
            }

            ulong[] lagrange = LagrangeAt(xs[i], subsetXs);
            for (int c = 0; c < ys.Length && !off[i]; c++)
            {
                ulong value = 0;
                for (int j = 0; j < subset.Length; j++)
                {
                    value = MersenneField.Add(value, MersenneField.Multiply(lagrange[j], ys[c][subset[j]]));
                }

                off[i] = value != ys[c][i];
            }
        }
    }

    /// <summary>λ_j = Π_{k≠j} (x0 − x_k) / (x_j − x_k): the interpolant through (x_j, y_j) at x0 is Σ λ_j y_j.</summary>
    private static ulong[] LagrangeAt(ulong x0, ReadOnlySpan<ulong> xs)
    {
        int t = xs.Length;
        ulong[] lambda = new ulong[t];
        for (int j = 0; j < t; j++)
        {
            ulong numerator = 1;
            ulong denominator = 1;
            for (int k = 0; k < t; k++)
            {
                if (k != j)
                {
                    numerator = MersenneField.Multiply(numerator, MersenneField.Subtract(x0, xs[k]));
                    denominator = MersenneField.Multiply(denominator, MersenneField.Subtract(xs[j], xs[k]));
                }
            }

            lambda[j] = MersenneField.Multiply(numerator, MersenneField.Inverse(denominator));
        }

        return lambda;
    }

    /// <summary>Writes chunk <paramref name="c"/> of the secret; false when it is not below 2^56 or its padding is not zero.</summary>
    private static bool WriteChunk(ulong value, int c, Span<byte> secret)
    {
        if ((value >> 56) != 0)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[Shamir.ElementBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        int start = c * Shamir.ChunkBytes;
        int take = Math.Min(Shamir.ChunkBytes, secret.Length - start);
        bool ok = true;
        for (int k = take; k < Shamir.ChunkBytes; k++)
        {
            ok &= bytes[k] == 0;
        }

        bytes[..take].CopyTo(secret[start..]);
        CryptographicOperations.ZeroMemory(bytes);
        return ok;
    }

    /// <summary>Advances a sorted t-subset of 0..n−1 to the next one in lexicographic order; false after the last.</summary>
    private static bool NextCombination(int[] subset, int n)
    {
        int t = subset.Length;
        int i = t - 1;
        while (i >= 0 && subset[i] == n - t + i)
        {
            i--;
        }

        if (i < 0)
        {
            return false;
        }

        subset[i]++;
        for (int j = i + 1; j < t; j++)
        {
            subset[j] = subset[j - 1] + 1;
        }

        return true;
    }

    /// <summary>The outcome of <see cref="TryUniqueDecode"/>.</summary>
    private enum UniqueDecoding
    {
        /// <summary>Every chunk decoded to a valid secret chunk.</summary>
        Secret,

        /// <summary>Every chunk decoded (one polynomial per chunk) but some constant is not a valid secret chunk.</summary>
        NotASecret,

        /// <summary>Some chunk has more wrong shares than Berlekamp–Welch corrects.</summary>
        Undecodable,
    }
}
