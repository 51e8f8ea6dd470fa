namespace SecureFed.Audit.Internal;

/// <summary>
/// An append-only compact range over a Merkle tree: the roots of the perfect subtrees that make up the tree's
/// binary decomposition (at most 64 hashes), so appending a leaf and computing the root cost O(log n).
/// </summary>
internal sealed class CompactRange
{
    private readonly List<byte[]> _hashes = [];

    /// <summary>Number of leaves appended.</summary>
    public long Size { get; private set; }

    /// <summary>Appends a leaf hash (32 bytes).</summary>
    public void Append(byte[] leafHash)
    {
        ArgumentNullException.ThrowIfNull(leafHash);
        if (leafHash.Length != MerkleTree.HashSize)
        {
            throw new ArgumentException($"A leaf hash is {MerkleTree.HashSize} bytes, got {leafHash.Length}.", nameof(leafHash));
        }

        _hashes.Add(leafHash);
        Size++;
        for (long n = Size; (n & 1) == 0; n >>= 1)
        {
            byte[] right = _hashes[^1];
            byte[] left = _hashes[^2];
            _hashes.RemoveRange(_hashes.Count - 2, 2);
            _hashes.Add(MerkleTree.NodeHash(left, right));
        }
    }

    /// <summary>The root hash of the tree of all leaves appended so far.</summary>
    public byte[] RootHash()
    {
        if (_hashes.Count == 0)
        {
            return MerkleTree.EmptyRootHash();
        }

        byte[] root = (byte[])_hashes[^1].Clone();
        for (int i = _hashes.Count - 2; i >= 0; i--)
        {
            MerkleTree.NodeHash(_hashes[i], root, root);
        }

        return root;
    }
}
