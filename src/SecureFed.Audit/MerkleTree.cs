using System.Security.Cryptography;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit;

/// <summary>
/// The Merkle hash tree of RFC 9162 (Certificate Transparency v2) section 2.1 over SHA-256:
/// leaf hash <c>SHA-256(0x00 || leaf)</c>, node hash <c>SHA-256(0x01 || left || right)</c>, inclusion proofs
/// (section 2.1.3) and consistency proofs (section 2.1.4). Hashes are always 32 bytes.
/// </summary>
public static class MerkleTree
{
    /// <summary>Size in bytes of every hash in the tree.</summary>
    public const int HashSize = 32;

    private static readonly byte[] EmptyRoot = SHA256.HashData(ReadOnlySpan<byte>.Empty);

    /// <summary>The root of the empty tree: SHA-256 of the empty string.</summary>
    public static byte[] EmptyRootHash() => (byte[])EmptyRoot.Clone();

    /// <summary>Returns <c>SHA-256(0x00 || leaf)</c>.</summary>
    public static byte[] LeafHash(ReadOnlySpan<byte> leaf)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        ReadOnlySpan<byte> prefix = [0x00];
        hash.AppendData(prefix);
        hash.AppendData(leaf);
        return hash.GetHashAndReset();
    }

    /// <summary>Returns <c>SHA-256(0x01 || left || right)</c>.</summary>
    public static byte[] NodeHash(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        byte[] result = new byte[HashSize];
        NodeHash(left, right, result);
        return result;
    }

    /// <summary>Writes <c>SHA-256(0x01 || left || right)</c> into <paramref name="destination"/> (32 bytes).</summary>
    public static void NodeHash(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right, Span<byte> destination)
    {
        Span<byte> buffer = stackalloc byte[1 + HashSize + HashSize];
        if (left.Length != HashSize || right.Length != HashSize)
        {
            // Not a tree node; hash the exact bytes anyway so that a malformed proof simply fails to verify.
            byte[] joined = new byte[1 + left.Length + right.Length];
            joined[0] = 0x01;
            left.CopyTo(joined.AsSpan(1));
            right.CopyTo(joined.AsSpan(1 + left.Length));
            SHA256.HashData(joined, destination);
            return;
        }

        buffer[0] = 0x01;
        left.CopyTo(buffer[1..]);
        right.CopyTo(buffer[(1 + HashSize)..]);
        SHA256.HashData(buffer, destination);
    }

    /// <summary>The Merkle tree hash (MTH) of <paramref name="leafHashes"/>; the empty tree hashes to SHA-256("").</summary>
    public static byte[] RootHash(IReadOnlyList<byte[]> leafHashes)
    {
        ArgumentNullException.ThrowIfNull(leafHashes);
        return SubtreeHash(leafHashes, 0, leafHashes.Count);
    }

    /// <summary>
    /// The inclusion proof (audit path, RFC 9162 section 2.1.3.1) of leaf <paramref name="index"/> (0-based) in the
    /// tree of all <paramref name="leafHashes"/>, ordered from the leaf up.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not a leaf of the tree.</exception>
    public static IReadOnlyList<byte[]> InclusionProof(IReadOnlyList<byte[]> leafHashes, long index)
    {
        ArgumentNullException.ThrowIfNull(leafHashes);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, leafHashes.Count);
        var proof = new List<byte[]>();
        Path((int)index, leafHashes, 0, leafHashes.Count, proof);
        return proof;
    }

    /// <summary>
    /// Verifies an inclusion proof (RFC 9162 section 2.1.3.2): leaf <paramref name="index"/> (0-based) with hash
    /// <paramref name="leafHash"/> is in the tree of <paramref name="size"/> leaves whose root is <paramref name="root"/>.
    /// Returns <see langword="false"/> for any malformed input rather than throwing.
    /// </summary>
    public static bool VerifyInclusion(long index, long size, ReadOnlySpan<byte> leafHash, IReadOnlyList<byte[]> proof, ReadOnlySpan<byte> root)
    {
        ArgumentNullException.ThrowIfNull(proof);
        if (index < 0 || index >= size || leafHash.Length != HashSize || root.Length != HashSize || !AllHashes(proof))
        {
            return false;
        }

        ulong fn = (ulong)index;
        ulong sn = (ulong)(size - 1);
        byte[] r = leafHash.ToArray();
        foreach (byte[] p in proof)
        {
            if (sn == 0)
            {
                return false;
            }

            if ((fn & 1) == 1 || fn == sn)
            {
                NodeHash(p, r, r);
                if ((fn & 1) == 0)
                {
                    while ((fn & 1) == 0 && fn != 0)
                    {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            }
            else
            {
                NodeHash(r, p, r);
            }

            fn >>= 1;
            sn >>= 1;
        }

        return sn == 0 && CryptographicOperations.FixedTimeEquals(r, root);
    }

    /// <summary>
    /// The consistency proof (RFC 9162 section 2.1.4.1) between the first <paramref name="oldSize"/> leaves and the
    /// first <paramref name="newSize"/> leaves of <paramref name="leafHashes"/>. Empty when the sizes are equal or
    /// <paramref name="oldSize"/> is 0.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The sizes are negative, out of order or exceed the leaves given.</exception>
    public static IReadOnlyList<byte[]> ConsistencyProof(IReadOnlyList<byte[]> leafHashes, long oldSize, long newSize)
    {
        ArgumentNullException.ThrowIfNull(leafHashes);
        ArgumentOutOfRangeException.ThrowIfNegative(oldSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(oldSize, newSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(newSize, leafHashes.Count);
        var proof = new List<byte[]>();
        if (oldSize > 0 && oldSize < newSize)
        {
            SubProof((int)oldSize, leafHashes, 0, (int)newSize, true, proof);
        }

        return proof;
    }

    /// <summary>
    /// Verifies a consistency proof (RFC 9162 section 2.1.4.2): the tree of <paramref name="oldSize"/> leaves with root
    /// <paramref name="oldRoot"/> is a prefix of the tree of <paramref name="newSize"/> leaves with root
    /// <paramref name="newRoot"/>. Equal sizes need an empty proof and equal roots; the empty tree (root SHA-256(""))
    /// is consistent with every tree through an empty proof. Returns <see langword="false"/> for any malformed input.
    /// </summary>
    public static bool VerifyConsistency(long oldSize, long newSize, ReadOnlySpan<byte> oldRoot, ReadOnlySpan<byte> newRoot, IReadOnlyList<byte[]> proof)
    {
        ArgumentNullException.ThrowIfNull(proof);
        if (oldSize < 0 || newSize < oldSize || oldRoot.Length != HashSize || newRoot.Length != HashSize || !AllHashes(proof))
        {
            return false;
        }

        if (oldSize == newSize)
        {
            return proof.Count == 0 && oldRoot.SequenceEqual(newRoot);
        }

        if (oldSize == 0)
        {
            return proof.Count == 0 && oldRoot.SequenceEqual(EmptyRoot);
        }

        if (proof.Count == 0)
        {
            return false;
        }

        var path = new List<byte[]>(proof.Count + 1);
        if ((oldSize & (oldSize - 1)) == 0)
        {
            path.Add(oldRoot.ToArray());
        }

        path.AddRange(proof);
        ulong fn = (ulong)(oldSize - 1);
        ulong sn = (ulong)(newSize - 1);
        while ((fn & 1) == 1)
        {
            fn >>= 1;
            sn >>= 1;
        }

        byte[] fr = (byte[])path[0].Clone();
        byte[] sr = (byte[])path[0].Clone();
        for (int i = 1; i < path.Count; i++)
        {
            byte[] c = path[i];
            if (sn == 0)
            {
                return false;
            }

            if ((fn & 1) == 1 || fn == sn)
            {
                NodeHash(c, fr, fr);
                NodeHash(c, sr, sr);
                if ((fn & 1) == 0)
                {
                    while ((fn & 1) == 0 && fn != 0)
                    {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            }
            else
            {
                NodeHash(sr, c, sr);
            }

            fn >>= 1;
            sn >>= 1;
        }

        return sn == 0 && fr.AsSpan().SequenceEqual(oldRoot) && sr.AsSpan().SequenceEqual(newRoot);
    }

    private static bool AllHashes(IReadOnlyList<byte[]> proof)
    {
        foreach (byte[] p in proof)
        {
            if (p is null || p.Length != HashSize)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Largest power of two strictly smaller than <paramref name="n"/> (n &gt; 1).</summary>
    private static int SplitPoint(int n)
    {
        int k = 1;
        while (k << 1 < n)
        {
            k <<= 1;
        }

        return k;
    }

    private static byte[] SubtreeHash(IReadOnlyList<byte[]> leaves, int start, int count)
    {
        if (count == 0)
        {
            return EmptyRootHash();
        }

        var range = new CompactRange();
        for (int i = start; i < start + count; i++)
        {
            range.Append(leaves[i]);
        }

        return range.RootHash();
    }

    private static void Path(int m, IReadOnlyList<byte[]> leaves, int start, int count, List<byte[]> proof)
    {
        if (count <= 1)
        {
            return;
        }

        int k = SplitPoint(count);
        if (m < k)
        {
            Path(m, leaves, start, k, proof);
            proof.Add(SubtreeHash(leaves, start + k, count - k));
        }
        else
        {
            Path(m - k, leaves, start + k, count - k, proof);
            proof.Add(SubtreeHash(leaves, start, k));
        }
    }

    private static void SubProof(int m, IReadOnlyList<byte[]> leaves, int start, int count, bool complete, List<byte[]> proof)
    {
        if (m == count)
        {
            if (!complete)
            {
                proof.Add(SubtreeHash(leaves, start, count));
            }

            return;
        }

        int k = SplitPoint(count);
        if (m <= k)
        {
            SubProof(m, leaves, start, k, complete, proof);
            proof.Add(SubtreeHash(leaves, start + k, count - k));
        }
        else
        {
            SubProof(m - k, leaves, start + k, count - k, false, proof);
            proof.Add(SubtreeHash(leaves, start, k));
        }
    }
}
