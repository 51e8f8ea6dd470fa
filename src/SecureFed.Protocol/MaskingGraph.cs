using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// Who masks with whom and who holds whose shares. Either the complete graph (Bonawitz et al. 2017) or, for large
/// cohorts, a k-regular Harary graph over a pseudo-random ordering of the cohort (SecAgg+, Bell et al. 2020): node at
/// position p is adjacent to positions p±1 … p±k/2 (mod n). Nodes are protocol indices 1..n.
/// </summary>
public sealed class MaskingGraph
{
    private readonly int[]? _position; // index -> position in the ring (Harary only)
    private readonly int[]? _atPosition; // position -> index

    private MaskingGraph(int size, int degree, int[]? position, int[]? atPosition)
    {
        Size = size;
        Degree = degree;
        _position = position;
        _atPosition = atPosition;
    }

    /// <summary>Number of nodes n.</summary>
    public int Size { get; }

    /// <summary>Neighbours per node, excluding the node itself (n-1 for the complete graph).</summary>
    public int Degree { get; }

    /// <summary>True for the complete graph.</summary>
    public bool IsComplete => _position is null;

    /// <summary>The complete graph on n nodes.</summary>
    public static MaskingGraph Complete(int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 2);
        return new MaskingGraph(size, size - 1, null, null);
    }

    /// <summary>
    /// A Harary graph H(k, n) over the ordering derived from <paramref name="seed"/> (32 bytes). With k ≥ n-1 it is the
    /// complete graph. The ordering is a Fisher–Yates shuffle driven by <see cref="MaskPrg"/> words (rejection sampled,
    /// so exactly uniform).
    /// </summary>
    public static MaskingGraph Harary(int size, int degree, ReadOnlySpan<byte> seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(degree, 2);
        if (degree % 2 != 0)
        {
            throw new ArgumentException($"A Harary graph needs an even degree, got {degree}.", nameof(degree));
        }

        if (degree >= size - 1)
        {
            return Complete(size);
        }

        int[] atPosition = new int[size];
        for (int i = 0; i < size; i++)
        {
            atPosition[i] = i + 1;
        }

        // Enough words for rejection sampling; refilled if ever exhausted.
        uint[] words = new uint[size * 2];
        int used = words.Length;
        int block = 0;
        for (int i = size - 1; i > 0; i--)
        {
            uint bound = (uint)(i + 1);
            uint limit = uint.MaxValue - (uint.MaxValue % bound);
            uint r;
            do
            {
                if (used == words.Length)
                {
                    MaskPrg.Generate(seed, DomainLabel.Encode("graph-order", block.ToString(System.Globalization.CultureInfo.InvariantCulture)), 32, words);
                    block++;
                    used = 0;
                }

                r = words[used++];
            }
            while (r >= limit);

            int j = (int)(r % bound);
            (atPosition[i], atPosition[j]) = (atPosition[j], atPosition[i]);
        }

        int[] position = new int[size + 1];
        for (int p = 0; p < size; p++)
        {
            position[atPosition[p]] = p;
        }

        return new MaskingGraph(size, degree, position, atPosition);
    }

    /// <summary>True when u and v (distinct) are adjacent.</summary>
    public bool AreNeighbors(int u, int v)
    {
        CheckIndex(u);
        CheckIndex(v);
        if (u == v)
        {
            return false;
        }

        if (_position is null)
        {
            return true;
        }

        int d = Math.Abs(_position[u] - _position[v]);
        d = Math.Min(d, Size - d);
        return d <= Degree / 2;
    }

    /// <summary>The neighbours of u (excluding u), in ascending index order.</summary>
    public IReadOnlyList<int> Neighbors(int u)
    {
        CheckIndex(u);
        var result = new List<int>(Degree);
        if (_position is null || _atPosition is null)
        {
            for (int v = 1; v <= Size; v++)
            {
                if (v != u)
                {
                    result.Add(v);
                }
            }

            return result;
        }

        int p = _position[u];
        for (int off = 1; off <= Degree / 2; off++)
        {
            result.Add(_atPosition[(p + off) % Size]);
            result.Add(_atPosition[(p - off + Size) % Size]);
        }

        result.Sort();
        return result;
    }

    /// <summary>The parties that hold shares of u's secrets: u itself and its neighbours, ascending.</summary>
    public IReadOnlyList<int> ShareHolders(int u)
    {
        var holders = new List<int>(Neighbors(u)) { u };
        holders.Sort();
        return holders;
    }

    /// <summary>A digest of the graph's adjacency, bound into the round parameters.</summary>
    internal byte[] Digest()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> buf = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(buf, Size);
        hash.AppendData(buf);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(buf, Degree);
        hash.AppendData(buf);
        if (_atPosition is not null)
        {
            foreach (int idx in _atPosition)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(buf, idx);
                hash.AppendData(buf);
            }
        }

        return hash.GetHashAndReset();
    }

    private void CheckIndex(int index)
    {
        if (index < 1 || index > Size)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"Protocol indices run from 1 to {Size}.");
        }
    }
}
