using SecureFed.Testing;

namespace SecureFed.Crypto.Tests;

public sealed class FixedPointQuantizerTests
{
    [Theory]
    [InlineData(0.123f, 10.0)]
    [InlineData(-0.123f, 10.0)]
    [InlineData(0.5f, 3.0)]
    [InlineData(-0.987f, 1000.0)]
    public void Quantize_ManyRoundings_MeanIsTheScaledValue(float value, double scale)
    {
        const int Draws = 40000;
        var quantizer = new FixedPointQuantizer(1.0, scale, 24);
        float[] values = Enumerable.Repeat(value, Draws).ToArray();
        uint[] words = new uint[Draws];
        using var random = new DeterministicRandomSource(12);

        quantizer.Quantize(values, words, random);

        double target = value * scale;
        long[] q = words.Select(w => ModularVector.ToSigned(w, 24)).ToArray();
        Assert.All(q, x => Assert.True(x == Math.Floor(target) || x == Math.Ceiling(target), $"{x} is not a neighbour of {target}"));
        double fraction = target - Math.Floor(target);
        double sigma = Math.Sqrt(fraction * (1 - fraction) / Draws);
        Assert.InRange(q.Average(), target - (5 * sigma) - 1e-9, target + (5 * sigma) + 1e-9);
        Assert.Contains(q, x => x == Math.Floor(target));
        Assert.Contains(q, x => x == Math.Ceiling(target));
    }

    [Fact]
    public void Quantize_ValuesOutsideClipBound_AreClipped()
    {
        var quantizer = new FixedPointQuantizer(2.0, 100.0, 16);
        uint[] words = new uint[4];
        double[] back = new double[4];

        quantizer.Quantize([5f, -1e30f, 2f, float.MaxValue], words, new DeterministicRandomSource(1));
        quantizer.Dequantize(words, back);

        Assert.Equal([2.0, -2.0, 2.0, 2.0], back);
        Assert.Equal(200, quantizer.MaxAbsQuantized);
    }

    [Fact]
    public void QuantizeThenDequantize_RandomValues_ErrorBelowOneQuantum()
    {
        var quantizer = new FixedPointQuantizer(0.5, 4096.0, 20);
        var rng = new Random(3);
        float[] values = Enumerable.Range(0, 5000).Select(_ => (float)((rng.NextDouble() - 0.5) * 1.0)).ToArray();
        uint[] words = new uint[values.Length];
        double[] back = new double[values.Length];

        quantizer.Quantize(values, words, new DeterministicRandomSource(2));
        quantizer.Dequantize(words, back);

        for (int i = 0; i < values.Length; i++)
        {
            Assert.True(Math.Abs(back[i] - values[i]) <= 1.0 / quantizer.Scale, $"index {i}: {values[i]} came back as {back[i]}");
            Assert.True(words[i] < (1u << 20));
        }
    }

    [Fact]
    public void Quantize_NegativeValue_StoredAsTwosComplement()
    {
        var quantizer = new FixedPointQuantizer(1.0, 4.0, 8);
        uint[] words = new uint[1];

        quantizer.Quantize([-0.5f], words, new DeterministicRandomSource(1));

        Assert.Equal(0xFEu, words[0]);
    }

    [Fact]
    public void QuantizedSum_OfManyInputs_DequantizesToSumOfValues()
    {
        const int Inputs = 50;
        var quantizer = new FixedPointQuantizer(1.0, 1000.0, BitWidthPlanner.ForSum(1000, Inputs, 0));
        var rng = new Random(4);
        uint[] sum = new uint[100];
        double[] exact = new double[100];
        using var random = new DeterministicRandomSource(4);
        for (int n = 0; n < Inputs; n++)
        {
            float[] values = Enumerable.Range(0, 100).Select(_ => (float)((rng.NextDouble() * 2) - 1)).ToArray();
            uint[] words = new uint[100];
            quantizer.Quantize(values, words, random);
            ModularVector.Add(sum, words, quantizer.BitWidth);
            for (int i = 0; i < 100; i++)
            {
                exact[i] += values[i];
            }
        }

        double[] decoded = new double[100];
        quantizer.Dequantize(sum, decoded);
        for (int i = 0; i < 100; i++)
        {
            Assert.True(Math.Abs(decoded[i] - exact[i]) <= Inputs / quantizer.Scale, $"coordinate {i}: {decoded[i]} vs {exact[i]}");
        }
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void Quantize_NonFiniteValue_ThrowsNamingTheIndex(float bad)
    {
        var quantizer = new FixedPointQuantizer(1.0, 10.0, 16);

        var ex = Assert.Throws<ArgumentException>(() => quantizer.Quantize([0f, 1f, 0.5f, bad], new uint[4], new DeterministicRandomSource(1)));

        Assert.Contains("index 3", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Quantize_LengthMismatch_ThrowsArgumentException()
    {
        var quantizer = new FixedPointQuantizer(1.0, 10.0, 16);

        Assert.Throws<ArgumentException>(() => quantizer.Quantize([1f, 2f], new uint[3], new DeterministicRandomSource(1)));
    }

    [Theory]
    [InlineData(0.0, 1.0, 16)]
    [InlineData(1.0, -1.0, 16)]
    [InlineData(double.NaN, 1.0, 16)]
    [InlineData(1.0, 1.0, 33)]
    [InlineData(1.0, 128.0, 8)]
    public void Constructor_InvalidParameters_ThrowsArgumentOutOfRangeException(double clip, double scale, int bitWidth)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new FixedPointQuantizer(clip, scale, bitWidth));
    }

    [Fact]
    public void Constructor_LargestFittingScale_Accepted()
    {
        var quantizer = new FixedPointQuantizer(1.0, 127.0, 8);

        Assert.Equal(127, quantizer.MaxAbsQuantized);
    }
}
