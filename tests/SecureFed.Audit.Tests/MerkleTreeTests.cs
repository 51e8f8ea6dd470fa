using SecureFed.Audit.Internal;

namespace SecureFed.Audit.Tests;

/// <summary>Reference vectors from transparency-dev/merkle (testonly/constants.go and proof/verify_test.go).</summary>
public sealed class MerkleTreeTests
{
    private static readonly byte[][] Leaves =
    [
        Hex(""), Hex("00"), Hex("10"), Hex("2021"), Hex("3031"), Hex("40414243"),
        Hex("5051525354555657"), Hex("606162636465666768696a6b6c6d6e6f"),
    ];

    // testonly/constants.go RootHashes(), indexed by tree size.
    private static readonly string[] Roots =
    [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    // testonly/constants.go NodeHashes() level 0 (the leaf hashes).
    private static readonly string[] LeafHashes =
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ];

    private static readonly byte[] SomeHash = Hex("abacaba000000000000000000000000000000000000000000060061e00123456");

    /// <summary>proof/verify_test.go inclusionProofs (leaf is 1-based there), excluding the degenerate {0, 0}.</summary>
    public static TheoryData<long, long, string[]> InclusionVectors() => new()
    {
        { 1, 1, [] },
        { 1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"] },
        { 6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"] },
        { 3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"] },
        { 2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"] },
    };

    /// <summary>proof/verify_test.go consistencyProofs.</summary>
    public static TheoryData<long, long, string[]> ConsistencyVectors() => new()
    {
        { 1, 1, [] },
        { 1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"] },
        { 6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"] },
        { 2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"] },
        { 6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"] },
    };

    [Fact]
    public void LeafHash_ReferenceLeaves_MatchNodeHashesLevelZero()
    {
        for (int i = 0; i < Leaves.Length; i++)
        {
            Assert.Equal(LeafHashes[i], Convert.ToHexStringLower(MerkleTree.LeafHash(Leaves[i])));
        }
    }

    [Fact]
    public void RootHash_EveryPrefixOfReferenceLeaves_MatchesReferenceRoots()
    {
        for (int size = 0; size <= Leaves.Length; size++)
        {
            Assert.Equal(Roots[size], Convert.ToHexStringLower(MerkleTree.RootHash(LeafHashList(size))));
        }
    }

    [Fact]
    public void CompactRange_AppendingReferenceLeaves_RootMatchesAfterEveryAppend()
    {
        var range = new CompactRange();
        Assert.Equal(Roots[0], Convert.ToHexStringLower(range.RootHash()));
        for (int i = 0; i < Leaves.Length; i++)
        {
            range.Append(MerkleTree.LeafHash(Leaves[i]));
            Assert.Equal(Roots[i + 1], Convert.ToHexStringLower(range.RootHash()));
        }
    }

    [Theory]
    [MemberData(nameof(InclusionVectors))]
    public void InclusionProof_ReferenceVector_IsGeneratedAndVerifies(long leaf, long size, string[] expected)
    {
        long index = leaf - 1;
        IReadOnlyList<byte[]> proof = MerkleTree.InclusionProof(LeafHashList((int)size), index);
        Assert.Equal(expected, proof.Select(Convert.ToHexStringLower));
        byte[] leafHash = MerkleTree.LeafHash(Leaves[index]);
        Assert.True(MerkleTree.VerifyInclusion(index, size, leafHash, proof, Hex(Roots[size])));
    }

    [Theory]
    [MemberData(nameof(InclusionVectors))]
    public void VerifyInclusion_CorruptedReferenceVector_IsRejected(long leaf, long size, string[] expected)
    {
        long index = leaf - 1;
        byte[] root = Hex(Roots[size]);
        byte[] leafHash = MerkleTree.LeafHash(Leaves[index]);
        List<byte[]> proof = [.. expected.Select(Hex)];
        var probes = new List<(long Index, long Size, byte[] Root, byte[] Leaf, List<byte[]> Proof, string Name)>
        {
            (index - 1, size, root, leafHash, proof, "index - 1"),
            (index + 1, size, root, leafHash, proof, "index + 1"),
            (index ^ 2, size, root, leafHash, proof, "index ^ 2"),
            (index, size * 2, root, leafHash, proof, "size * 2"),
            (index, size / 2, root, leafHash, proof, "size / 2"),
            (index, size, root, "WrongLeaf"u8.ToArray(), proof, "wrong leaf"),
            (index, size, Hex(Roots[0]), leafHash, proof, "empty root"),
            (index, size, SomeHash, leafHash, proof, "random root"),
            (index, size, root, leafHash, [.. proof, []], "trailing garbage"),
            (index, size, root, leafHash, [.. proof, root], "trailing root"),
            (index, size, root, leafHash, [[], .. proof], "preceding garbage"),
            (index, size, root, leafHash, [root, .. proof], "preceding root"),
        };
        for (int i = 0; i < proof.Count; i++)
        {
            List<byte[]> flipped = [.. proof.Select(p => (byte[])p.Clone())];
            flipped[i][0] ^= 8;
            probes.Add((index, size, root, leafHash, flipped, $"flipped proof[{i}]"));
        }

        if (proof.Count > 0)
        {
            probes.Add((index, size, root, leafHash, proof[..^1], "removed component"));
        }

        if (proof.Count > 1)
        {
            probes.Add((index, size, root, leafHash, [proof[0], SomeHash, .. proof[1..]], "inserted component"));
        }

        foreach (var probe in probes)
        {
            Assert.False(MerkleTree.VerifyInclusion(probe.Index, probe.Size, probe.Leaf, probe.Proof, probe.Root), probe.Name);
        }
    }

    [Theory]
    [MemberData(nameof(ConsistencyVectors))]
    public void ConsistencyProof_ReferenceVector_IsGeneratedAndVerifies(long size1, long size2, string[] expected)
    {
        IReadOnlyList<byte[]> proof = MerkleTree.ConsistencyProof(LeafHashList(8), size1, size2);
        Assert.Equal(expected, proof.Select(Convert.ToHexStringLower));
        Assert.True(MerkleTree.VerifyConsistency(size1, size2, Hex(Roots[size1]), Hex(Roots[size2]), proof));
    }

    [Theory]
    [MemberData(nameof(ConsistencyVectors))]
    public void VerifyConsistency_CorruptedReferenceVector_IsRejected(long size1, long size2, string[] expected)
    {
        byte[] root1 = Hex(Roots[size1]);
        byte[] root2 = Hex(Roots[size2]);
        List<byte[]> proof = [.. expected.Select(Hex)];
        if (proof.Count == 0)
        {
            // Equal sizes: only equal roots and an empty proof are consistent.
            Assert.False(MerkleTree.VerifyConsistency(size1, size2, root1, SomeHash, proof));
            Assert.False(MerkleTree.VerifyConsistency(size1, size2, root1, root2, [root1]));
            return;
        }

        var probes = new List<(long Size1, long Size2, byte[] Root1, byte[] Root2, List<byte[]> Proof, string Name)>
        {
            (size1 - 1, size2, root1, root2, proof, "size1 - 1"),
            (size1 + 1, size2, root1, root2, proof, "size1 + 1"),
            (size1 ^ 2, size2, root1, root2, proof, "size1 ^ 2"),
            (size1, size2 * 2, root1, root2, proof, "size2 * 2"),
            (size1, size2 / 2, root1, root2, proof, "size2 / 2"),
            (size1, size2, "WrongRoot"u8.ToArray(), root2, proof, "wrong root1"),
            (size1, size2, root1, "WrongRoot"u8.ToArray(), proof, "wrong root2"),
            (size1, size2, root2, root1, proof, "swapped roots"),
            (size1, size2, root1, root2, [], "empty proof"),
            (size1, size2, root1, root2, [.. proof, []], "trailing garbage"),
            (size1, size2, root1, root2, [.. proof, root1], "trailing root1"),
            (size1, size2, root1, root2, [.. proof, root2], "trailing root2"),
            (size1, size2, root1, root2, [[], .. proof], "preceding garbage"),
            (size1, size2, root1, root2, [root1, .. proof], "preceding root1"),
            (size1, size2, root1, root2, [root2, .. proof], "preceding root2"),
            (size1, size2, root1, root2, [proof[0], .. proof], "preceding proof[0]"),
            (size1, size2, root1, root2, proof[..^1], "truncated proof"),
        };
        for (int i = 0; i < proof.Count; i++)
        {
            List<byte[]> flipped = [.. proof.Select(p => (byte[])p.Clone())];
            flipped[i][0] ^= 16;
            probes.Add((size1, size2, root1, root2, flipped, $"flipped proof[{i}]"));
        }

        foreach (var probe in probes)
        {
            Assert.False(MerkleTree.VerifyConsistency(probe.Size1, probe.Size2, probe.Root1, probe.Root2, probe.Proof), probe.Name);
        }
    }

    [Fact]
    public void VerifyConsistency_EmptyOldTree_ConsistentOnlyWithEmptyRootAndEmptyProof()
    {
        Assert.True(MerkleTree.VerifyConsistency(0, 5, Hex(Roots[0]), Hex(Roots[5]), []));
        Assert.False(MerkleTree.VerifyConsistency(0, 5, SomeHash, Hex(Roots[5]), []));
        Assert.False(MerkleTree.VerifyConsistency(0, 5, Hex(Roots[0]), Hex(Roots[5]), [Hex(Roots[0])]));
        Assert.False(MerkleTree.VerifyConsistency(2, 1, Hex(Roots[2]), Hex(Roots[1]), []));
    }

    [Fact]
    public void Proofs_AllIndicesAndSizesUpTo70_GeneratedProofsVerifyAndWrongRootsFail()
    {
        List<byte[]> leaves = [.. Enumerable.Range(0, 70).Select(i => MerkleTree.LeafHash(BitConverter.GetBytes(i)))];
        var roots = new byte[leaves.Count + 1][];
        for (int n = 0; n <= leaves.Count; n++)
        {
            roots[n] = MerkleTree.RootHash(leaves.GetRange(0, n));
        }

        for (int n = 1; n <= leaves.Count; n++)
        {
            List<byte[]> prefix = leaves.GetRange(0, n);
            for (int i = 0; i < n; i++)
            {
                IReadOnlyList<byte[]> proof = MerkleTree.InclusionProof(prefix, i);
                Assert.True(MerkleTree.VerifyInclusion(i, n, leaves[i], proof, roots[n]), $"inclusion {i} in {n}");
                Assert.False(MerkleTree.VerifyInclusion(i, n, leaves[(i + 1) % leaves.Count], proof, roots[n]), $"wrong leaf {i} in {n}");
            }

            for (int m = 0; m <= n; m++)
            {
                IReadOnlyList<byte[]> proof = MerkleTree.ConsistencyProof(leaves, m, n);
                Assert.True(MerkleTree.VerifyConsistency(m, n, roots[m], roots[n], proof), $"consistency {m} -> {n}");
                if (m > 0 && m < n)
                {
                    Assert.False(MerkleTree.VerifyConsistency(m, n, roots[m - 1], roots[n], proof), $"wrong old root {m} -> {n}");
                }
            }
        }
    }

    private static List<byte[]> LeafHashList(int count) => [.. Leaves.Take(count).Select(l => MerkleTree.LeafHash(l))];

    private static byte[] Hex(string hex) => Convert.FromHexString(hex);
}
