namespace SecureFed.Crypto.Tests;

public sealed class ModularVectorTests
{
    public static TheoryData<int, int> Cases
    {
        get
        {
            var data = new TheoryData<int, int>();
            var random = new Random(5);
            foreach (int width in new[] { 1, 2, 8, 17, 31, 32 })
            {
                foreach (int length in new[] { 0, 1, 7, 8, 9, 15, 16, 17, 33, random.Next(100, 1000) })
                {
                    data.Add(length, width);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Add_RandomVectors_MatchesScalarReference(int length, int bitWidth)
    {
        var random = new Random((length * 64) + bitWidth);
        uint[] a = RandomWords(random, length);
        uint[] b = RandomWords(random, length);
        long modulus = 1L << bitWidth;
        uint[] expected = a.Zip(b, (x, y) => (uint)(((long)x + y) % modulus)).ToArray();

        ModularVector.Add(a, b, bitWidth);

        Assert.Equal(expected, a);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Subtract_RandomVectors_MatchesScalarReference(int length, int bitWidth)
    {
        var random = new Random((length * 64) + bitWidth + 1);
        uint[] a = RandomWords(random, length);
        uint[] b = RandomWords(random, length);
        long modulus = 1L << bitWidth;
        uint[] expected = a.Zip(b, (x, y) => (uint)((((long)x - y) % modulus + modulus) % modulus)).ToArray();

        ModularVector.Subtract(a, b, bitWidth);

        Assert.Equal(expected, a);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Negate_RandomVector_MatchesScalarReferenceAndSumsToZero(int length, int bitWidth)
    {
        var random = new Random((length * 64) + bitWidth + 2);
        uint[] a = RandomWords(random, length);
        long modulus = 1L << bitWidth;
        uint[] expected = a.Select(x => (uint)((modulus - (x % modulus)) % modulus)).ToArray();
        uint[] negated = (uint[])a.Clone();

        ModularVector.Negate(negated, bitWidth);

        Assert.Equal(expected, negated);
        ModularVector.Add(negated, a, bitWidth);
        Assert.All(negated, w => Assert.Equal(0u, w));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Reduce_RandomVector_MatchesScalarReference(int length, int bitWidth)
    {
        var random = new Random((length * 64) + bitWidth + 3);
        uint[] a = RandomWords(random, length);
        long modulus = 1L << bitWidth;
        uint[] expected = a.Select(x => (uint)(x % modulus)).ToArray();

        ModularVector.Reduce(a, bitWidth);

        Assert.Equal(expected, a);
    }

    [Fact]
    public void ToSigned_EightBits_MatchesSbyte()
    {
        for (uint w = 0; w < 256; w++)
        {
            Assert.Equal((sbyte)(byte)w, ModularVector.ToSigned(w, 8));
        }
    }

    [Fact]
    public void ToSigned_ThirtyTwoBits_MatchesInt()
    {
        var random = new Random(8);
        foreach (uint w in RandomWords(random, 1000).Concat(new uint[] { 0u, 1u, int.MaxValue, 0x8000_0000u, uint.MaxValue }))
        {
            Assert.Equal((int)w, ModularVector.ToSigned(w, 32));
        }
    }

    [Fact]
    public void ToSigned_HighBitsAboveWidth_AreIgnored()
    {
        Assert.Equal(-1, ModularVector.ToSigned(0xffff_ffffu, 5));
        Assert.Equal(3, ModularVector.ToSigned(0xffff_ff03u, 4));
    }

    [Fact]
    public void Add_LengthMismatch_ThrowsArgumentException()
    {
        var ex = Assert.Throws<ArgumentException>(() => ModularVector.Add(new uint[3], new uint[4], 8));
        Assert.Contains("same length", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ModularVector.Subtract(new uint[5], new uint[4], 8));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(33)]
    public void Negate_BitWidthOutOfRange_ThrowsArgumentOutOfRangeException(int bitWidth)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ModularVector.Negate(new uint[1], bitWidth));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModularVector.ToSigned(0, bitWidth));
    }

    private static uint[] RandomWords(Random random, int length) =>
        Enumerable.Range(0, length).Select(_ => (uint)random.NextInt64(0, 1L << 32)).ToArray();
}
