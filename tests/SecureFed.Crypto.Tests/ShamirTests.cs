using System.Buffers.Binary;
using System.Security.Cryptography;

using FsCheck;
using FsCheck.Xunit;

using SecureFed.Testing;

namespace SecureFed.Crypto.Tests;

public sealed class ShamirTests
{
    [Property(MaxTest = 60)]
    public void Combine_AnyThresholdSubsetInAnyOrder_ReconstructsSecret(PositiveInt seed, byte thresholdByte, byte extraByte, byte lengthByte)
    {
        int threshold = 2 + (thresholdByte % 20);
        int n = threshold + (extraByte % 15);
        int length = 1 + (lengthByte % 70);
        using var random = new DeterministicRandomSource(seed.Get);
        var rng = new Random(seed.Get);
        byte[] secret = new byte[length];
        random.Fill(secret);
        int[] xs = Enumerable.Range(0, n).Select(i => (i * 7919) + 1 + rng.Next(7000)).Distinct().ToArray();
        if (xs.Length < threshold)
        {
            return;
        }

        ShamirShare[] shares = Shamir.Split(secret, threshold, xs, random);
        ShamirShare[] subset = shares.OrderBy(_ => rng.Next()).Take(threshold + rng.Next(xs.Length - threshold + 1)).ToArray();

        Assert.Equal(secret, Shamir.Combine(subset, threshold, length));
    }

    [Fact]
    public void Split_ThousandShares_AnyThresholdReconstructs()
    {
        using var random = new DeterministicRandomSource(1000);
        byte[] secret = new byte[32];
        random.Fill(secret);
        int[] xs = Enumerable.Range(1, 1000).ToArray();

        ShamirShare[] shares = Shamir.Split(secret, 500, xs, random);

        Assert.All(shares, s => Assert.Equal(Shamir.ShareValueLength(32), s.Value.Length));
        Assert.Equal(secret, Shamir.Combine(shares.Reverse().ToArray(), 500, 32));
        Assert.Equal(secret, Shamir.Combine(shares.Where((_, i) => i % 2 == 1).ToArray(), 500, 32));
    }

    [Fact]
    public void Split_ShareValueLayout_IsOneLittleEndianFieldElementPerSevenBytes()
    {
        using var random = new DeterministicRandomSource(8);
        ShamirShare[] shares = Shamir.Split(new byte[15], 2, [1, 2, 3], random);

        Assert.All(shares, s =>
        {
            Assert.Equal(3 * 8, s.Value.Length);
            for (int c = 0; c < 3; c++)
            {
                Assert.True(BinaryPrimitives.ReadUInt64LittleEndian(s.Value.AsSpan(c * 8)) < Shamir.Prime);
            }
        });
    }

    [Fact]
    public void Split_TwoOfThree_SharesLieOnALine()
    {
        // With t = 2 the shares of each chunk are (x, s + a x): the chunk secret is 2 f(1) - f(2).
        using var random = new DeterministicRandomSource(21);
        byte[] secret = [1, 2, 3, 4, 5, 6, 7];
        ShamirShare[] shares = Shamir.Split(secret, 2, [1, 2, 3], random);
        ulong y1 = BinaryPrimitives.ReadUInt64LittleEndian(shares[0].Value);
        ulong y2 = BinaryPrimitives.ReadUInt64LittleEndian(shares[1].Value);
        ulong y3 = BinaryPrimitives.ReadUInt64LittleEndian(shares[2].Value);

        ulong s = (ulong)(((UInt128)2 * y1 + Shamir.Prime - y2) % Shamir.Prime);
        byte[] expected = new byte[8];
        secret.CopyTo(expected, 0);
        Assert.Equal(BinaryPrimitives.ReadUInt64LittleEndian(expected), s);
        Assert.Equal((y2 + y2 + Shamir.Prime - y1) % Shamir.Prime, y3);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Split_ThresholdMinusOneShares_AreIndependentOfTheSecret(int threshold)
    {
        // Chi-square homogeneity: the joint distribution of t - 1 shares' first elements (bucketed) is the same for
        // two very different secrets, and uniform for each.
        const int Trials = 6000;
        const int BinsPerShare = 16;
        int sharesSeen = threshold - 1;
        int bins = threshold == 2 ? BinsPerShare : 4 * 4;
        long[] histogramZero = new long[bins];
        long[] histogramOnes = new long[bins];
        using var random = new DeterministicRandomSource(threshold * 31);
        byte[] zeros = new byte[7];
        byte[] ones = Enumerable.Repeat((byte)0xff, 7).ToArray();
        int[] xs = Enumerable.Range(1, threshold + 1).ToArray();

        for (int trial = 0; trial < Trials; trial++)
        {
            histogramZero[Bucket(Shamir.Split(zeros, threshold, xs, random), sharesSeen)]++;
            histogramOnes[Bucket(Shamir.Split(ones, threshold, xs, random), sharesSeen)]++;
        }

        double critical = ChiSquare.Critical(bins - 1);
        Assert.True(ChiSquare.AgainstUniform(histogramZero) < critical, "shares of the zero secret are not uniform");
        Assert.True(ChiSquare.AgainstUniform(histogramOnes) < critical, "shares of the 0xff secret are not uniform");
        Assert.True(ChiSquare.Homogeneity(histogramZero, histogramOnes) < critical, "t - 1 shares depend on the secret");
    }

    [Fact]
    public void Split_ThresholdMinusOneShares_EveryCandidateSecretIsConsistent()
    {
        // For t - 1 shares and ANY candidate secret there is exactly one polynomial of degree t - 1 through
        // (0, candidate) and those shares; its value at a fresh x completes the set, and Combine then yields the
        // candidate. So t - 1 shares rule out no secret.
        using var random = new DeterministicRandomSource(77);
        ShamirShare[] shares = Shamir.Split([9, 9, 9, 9, 9, 9, 9], 3, [1, 2, 3], random);
        ShamirShare[] known = shares[..2];
        const int FreshX = 1000;

        foreach (byte candidate in new byte[] { 0, 1, 9, 200 })
        {
            byte[] candidateSecret = Enumerable.Repeat(candidate, 7).ToArray();
            ulong c = BinaryPrimitives.ReadUInt64LittleEndian([.. candidateSecret, 0]);
            (ulong X, ulong Y)[] points =
            [
                (0, c),
                ((ulong)known[0].X, BinaryPrimitives.ReadUInt64LittleEndian(known[0].Value)),
                ((ulong)known[1].X, BinaryPrimitives.ReadUInt64LittleEndian(known[1].Value)),
            ];
            ulong completion = Interpolate(points, FreshX);

            byte[] combined = Shamir.Combine([new ShamirShare(FreshX, LittleEndian(completion)), known[0], known[1]], 3, 7);

            Assert.Equal(candidateSecret, combined);
        }
    }

    [Fact]
    public void Combine_FewerThanThreshold_ThrowsNamingCounts()
    {
        ShamirShare[] shares = Shamir.Split([1, 2, 3], 3, [1, 2, 3, 4], new DeterministicRandomSource(1));

        var ex = Assert.Throws<ArgumentException>(() => Shamir.Combine(shares[..2], 3, 3));
        Assert.Contains("at least 3 shares, got 2", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Combine_DuplicateX_ThrowsArgumentException()
    {
        ShamirShare[] shares = Shamir.Split([1, 2, 3], 2, [1, 2], new DeterministicRandomSource(1));

        var ex = Assert.Throws<ArgumentException>(() => Shamir.Combine([shares[0], shares[0]], 2, 3));
        Assert.Contains("more than once", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Combine_NonPositiveX_ThrowsArgumentException(int x)
    {
        ShamirShare[] shares = Shamir.Split([1, 2, 3], 2, [1, 2], new DeterministicRandomSource(1));

        var ex = Assert.Throws<ArgumentException>(() => Shamir.Combine([shares[0], shares[1] with { X = x }], 2, 3));
        Assert.Contains("must be positive", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Combine_InconsistentValueLength_ThrowsArgumentException()
    {
        ShamirShare[] shares = Shamir.Split([1, 2, 3], 2, [1, 2], new DeterministicRandomSource(1));

        Assert.Throws<ArgumentException>(() => Shamir.Combine([shares[0], shares[1] with { Value = new byte[16] }], 2, 3));
    }

    [Fact]
    public void Combine_ValueNotAFieldElement_ThrowsArgumentException()
    {
        ShamirShare[] shares = Shamir.Split([1, 2, 3], 2, [1, 2], new DeterministicRandomSource(1));
        byte[] bad = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bad, Shamir.Prime);

        var ex = Assert.Throws<ArgumentException>(() => Shamir.Combine([shares[0], shares[1] with { Value = bad }], 2, 3));
        Assert.Contains("field prime", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Combine_CorruptedShare_ThrowsCryptographicException()
    {
        using var random = new DeterministicRandomSource(4);
        byte[] secret = new byte[32];
        random.Fill(secret);
        ShamirShare[] shares = Shamir.Split(secret, 3, [1, 2, 3], random);
        // A share replaced by random field elements: each 61-bit chunk result lands below 2^56 with probability
        // 2^-5, so five chunks go undetected with probability 2^-25. (Small edits are NOT detected: the padding check
        // is a sanity check, not authentication.)
        ulong[] elements = new ulong[Shamir.ChunkCount(32)];
        Shamir.SampleField(random, elements);
        byte[] corrupted = elements.SelectMany(LittleEndian).ToArray();

        Assert.Throws<CryptographicException>(() => Shamir.Combine([shares[0], shares[1] with { Value = corrupted }, shares[2]], 3, 32));
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(4, 3)]
    public void Split_BadThreshold_ThrowsArgumentException(int threshold, int n)
    {
        Assert.Throws<ArgumentException>(() => Shamir.Split([1], threshold, Enumerable.Range(1, n).ToArray(), new DeterministicRandomSource(1)));
    }

    [Fact]
    public void Split_DuplicateOrZeroX_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => Shamir.Split([1], 2, [1, 2, 2], new DeterministicRandomSource(1)));
        Assert.Throws<ArgumentException>(() => Shamir.Split([1], 2, [0, 1, 2], new DeterministicRandomSource(1)));
    }

    [Fact]
    public void Split_MoreThanMaxShares_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => Shamir.Split([1], 2, Enumerable.Range(1, Shamir.MaxShares + 1).ToArray(), new DeterministicRandomSource(1)));
    }

    [Fact]
    public void SampleField_RandomWordEqualToPrime_IsRejected()
    {
        // The first 8 bytes give 0xFF..FF >> 3 = p, which must be rejected and replaced by the next draw.
        var source = new ScriptedRandomSource([.. Enumerable.Repeat((byte)0xff, 8), .. new byte[] { 0x28, 0, 0, 0, 0, 0, 0, 0 }]);
        ulong[] values = new ulong[1];

        Shamir.SampleField(source, values);

        Assert.Equal(5UL, values[0]);
    }

    [Fact]
    public void Reconstructor_ManySecretsSameParties_MatchesCombine()
    {
        using var random = new DeterministicRandomSource(55);
        int[] xs = Enumerable.Range(1, 40).ToArray();
        int[] survivors = xs.Where(x => x % 3 != 0).Take(25).ToArray();
        var reconstructor = new ShamirReconstructor(survivors);

        for (int s = 0; s < 20; s++)
        {
            byte[] secret = new byte[32];
            random.Fill(secret);
            ShamirShare[] shares = Shamir.Split(secret, 25, xs, random);
            var values = survivors.Select(x => (ReadOnlyMemory<byte>)shares[x - 1].Value).ToArray();
            byte[] recovered = new byte[32];

            reconstructor.Reconstruct(values, recovered);

            Assert.Equal(secret, recovered);
        }
    }

    private static int Bucket(ShamirShare[] shares, int count)
    {
        int bucket = 0;
        int binsPerShare = count == 1 ? 16 : 4;
        for (int i = 0; i < count; i++)
        {
            ulong y = BinaryPrimitives.ReadUInt64LittleEndian(shares[i].Value);
            bucket = (bucket * binsPerShare) + (int)((UInt128)y * (ulong)binsPerShare / Shamir.Prime);
        }

        return bucket;
    }

    /// <summary>Reference Lagrange interpolation (UInt128 arithmetic) of the points, evaluated at <paramref name="at"/>.</summary>
    private static ulong Interpolate((ulong X, ulong Y)[] points, ulong at)
    {
        const ulong P = Shamir.Prime;
        UInt128 sum = 0;
        for (int i = 0; i < points.Length; i++)
        {
            UInt128 num = 1;
            UInt128 den = 1;
            for (int j = 0; j < points.Length; j++)
            {
                if (j != i)
                {
                    num = num * ((at + P - points[j].X) % P) % P;
                    den = den * ((points[i].X + P - points[j].X) % P) % P;
                }
            }

            UInt128 lambda = num * ModInverse((ulong)den) % P;
            sum = (sum + (lambda * points[i].Y % P)) % P;
        }

        return (ulong)sum;
    }

    private static ulong ModInverse(ulong a)
    {
        UInt128 result = 1;
        UInt128 b = a;
        ulong e = Shamir.Prime - 2;
        while (e != 0)
        {
            if ((e & 1) != 0)
            {
                result = result * b % Shamir.Prime;
            }

            b = b * b % Shamir.Prime;
            e >>= 1;
        }

        return (ulong)result;
    }

    private static byte[] LittleEndian(ulong value)
    {
        byte[] bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        return bytes;
    }

    private sealed class ScriptedRandomSource(byte[] script) : IRandomSource
    {
        private int _offset;

        public void Fill(Span<byte> destination)
        {
            script.AsSpan(_offset, destination.Length).CopyTo(destination);
            _offset += destination.Length;
        }
    }
}
