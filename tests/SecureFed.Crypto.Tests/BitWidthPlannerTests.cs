namespace SecureFed.Crypto.Tests;

public sealed class BitWidthPlannerTests
{
    [Fact]
    public void ForSum_RandomInputs_IsTheSmallestWidthThatCannotWrap()
    {
        var random = new Random(10);
        for (int trial = 0; trial < 2000; trial++)
        {
            long maxAbs = random.NextInt64(0, 1L << random.Next(1, 24));
            int inputs = random.Next(1, 1000);
            long headroom = random.NextInt64(0, 1L << random.Next(1, 20));
            long range = (maxAbs * inputs) + headroom;
            if (range > int.MaxValue)
            {
                Assert.Throws<InvalidOperationException>(() => BitWidthPlanner.ForSum(maxAbs, inputs, headroom));
                continue;
            }

            int b = BitWidthPlanner.ForSum(maxAbs, inputs, headroom);

            Assert.InRange(b, 1, 32);
            Assert.True(range <= (1L << (b - 1)) - 1, $"range {range} does not fit in {b} bits");
            Assert.True(b == 1 || range > (1L << (b - 2)) - 1, $"range {range} would fit in {b - 1} bits");
        }
    }

    [Fact]
    public void ForSum_SumOfExtremeInputs_DecodesWithoutWrap()
    {
        const long MaxAbs = 1000;
        const int Inputs = 37;
        int b = BitWidthPlanner.ForSum(MaxAbs, Inputs, 500);
        uint[] sum = new uint[2];
        foreach (long value in new[] { MaxAbs, -MaxAbs })
        {
            for (int i = 0; i < Inputs; i++)
            {
                ModularVector.Add(sum.AsSpan(value > 0 ? 0 : 1, 1), [(uint)value], b);
            }
        }

        ModularVector.Add(sum.AsSpan(0, 1), [500u], b);
        ModularVector.Add(sum.AsSpan(1, 1), [unchecked((uint)-500)], b);
        Assert.Equal((MaxAbs * Inputs) + 500, ModularVector.ToSigned(sum[0], b));
        Assert.Equal(-((MaxAbs * Inputs) + 500), ModularVector.ToSigned(sum[1], b));
    }

    [Fact]
    public void ForSum_RangeExactlyInt32Max_Gives32Bits()
    {
        Assert.Equal(32, BitWidthPlanner.ForSum(int.MaxValue, 1, 0));
    }

    [Fact]
    public void ForSum_NeedsMoreThan32Bits_ThrowsWithClearMessage()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => BitWidthPlanner.ForSum(1L << 30, 2, 0));

        Assert.Contains("more than 32 bits", ex.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => BitWidthPlanner.ForSum(long.MaxValue, int.MaxValue, long.MaxValue));
    }

    [Theory]
    [InlineData(-1L, 1, 0L)]
    [InlineData(1L, 0, 0L)]
    [InlineData(1L, 1, -1L)]
    public void ForSum_InvalidArguments_ThrowsArgumentOutOfRangeException(long maxAbs, int inputs, long headroom)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BitWidthPlanner.ForSum(maxAbs, inputs, headroom));
    }
}
