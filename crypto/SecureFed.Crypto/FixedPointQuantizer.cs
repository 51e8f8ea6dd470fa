using System.Buffers;
using System.Runtime.InteropServices;

namespace SecureFed.Crypto;

/// <summary>
/// Fixed-point quantization of model updates for secure aggregation: clip to [-c, c], multiply by the scale, round
/// stochastically without bias, and store as b-bit two's complement words (mod 2^b). <see cref="Dequantize"/> is the
/// inverse up to the rounding (error below 1 / scale per coordinate).
/// </summary>
public sealed class FixedPointQuantizer
{
    private const int RandomBatch = 1024;
    private const double TwoPow32 = 4294967296.0;

    private readonly uint _mask;

    /// <summary>Creates a quantizer.</summary>
    /// <param name="clipBound">c &gt; 0: values are clipped to [-c, c].</param>
    /// <param name="scale">s &gt; 0: fixed-point scale (the quantum is 1 / s).</param>
    /// <param name="bitWidth">b, 2 to 32; ceil(c * s) must fit in b-bit two's complement (at most 2^(b-1) - 1).</param>
    /// <exception cref="ArgumentOutOfRangeException">A parameter is not finite/positive, b is outside 2..32, or ceil(c * s) does not fit.</exception>
    public FixedPointQuantizer(double clipBound, double scale, int bitWidth)
    {
        if (!double.IsFinite(clipBound) || clipBound <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(clipBound), clipBound, "The clip bound must be a finite number above 0.");
        }

        if (!double.IsFinite(scale) || scale <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "The scale must be a finite number above 0.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(bitWidth, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bitWidth, 32);
        double maxAbs = Math.Ceiling(clipBound * scale);
        long limit = (1L << (bitWidth - 1)) - 1;
        if (!(maxAbs <= limit))
        {
            throw new ArgumentOutOfRangeException(
                nameof(bitWidth), bitWidth,
                $"ceil(clipBound * scale) = {maxAbs} does not fit in {bitWidth}-bit two's complement (at most {limit}).");
        }

        ClipBound = clipBound;
        Scale = scale;
        BitWidth = bitWidth;
        MaxAbsQuantized = (long)maxAbs;
        _mask = ModularVector.Mask(bitWidth);
    }

    /// <summary>c: the clip bound.</summary>
    public double ClipBound { get; }

    /// <summary>s: the fixed-point scale.</summary>
    public double Scale { get; }

    /// <summary>b: the word width.</summary>
    public int BitWidth { get; }

    /// <summary>ceil(c * s): the largest magnitude a quantized coordinate can have.</summary>
    public long MaxAbsQuantized { get; }

    /// <summary>
    /// Quantizes <paramref name="values"/> into <paramref name="destination"/>: q = floor(x) + Bernoulli(x - floor(x))
    /// with x = clip(v) * s, so E[q] = x (up to 2^-32); the Bernoulli draws compare a 32-bit uniform from
    /// <paramref name="random"/> (read in bulk) with frac * 2^32. Words are q mod 2^b.
    /// </summary>
    /// <exception cref="ArgumentException">The lengths differ, or a value is NaN or infinite (the message names its index).</exception>
    public void Quantize(ReadOnlySpan<float> values, Span<uint> destination, IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (values.Length != destination.Length)
        {
            throw new ArgumentException($"The destination has {destination.Length} words but there are {values.Length} values.", nameof(destination));
        }

        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                throw new ArgumentException($"Value at index {i} is {values[i]}; only finite values can be quantized.", nameof(values));
            }
        }

        double c = ClipBound;
        double s = Scale;
        uint[] uniforms = ArrayPool<uint>.Shared.Rent(Math.Min(RandomBatch, Math.Max(values.Length, 1)));
        try
        {
            for (int start = 0; start < values.Length; start += RandomBatch)
            {
                int count = Math.Min(RandomBatch, values.Length - start);
                Span<uint> u = uniforms.AsSpan(0, count);
                random.Fill(MemoryMarshal.AsBytes(u));
                for (int k = 0; k < count; k++)
                {
                    double x = Math.Clamp((double)values[start + k], -c, c) * s;
                    double floor = Math.Floor(x);
                    double fraction = x - floor;
                    long q = (long)floor + (u[k] < fraction * TwoPow32 ? 1 : 0);
                    destination[start + k] = (uint)q & _mask;
                }
            }
        }
        finally
        {
            ArrayPool<uint>.Shared.Return(uniforms, clearArray: true);
        }
    }

    /// <summary>destination[i] = signed(words[i] mod 2^b) / s.</summary>
    /// <exception cref="ArgumentException">The lengths differ.</exception>
    public void Dequantize(ReadOnlySpan<uint> words, Span<double> destination)
    {
        if (words.Length != destination.Length)
        {
            throw new ArgumentException($"The destination has {destination.Length} entries but there are {words.Length} words.", nameof(destination));
        }

        long half = 1L << (BitWidth - 1);
        long modulus = 1L << BitWidth;
        for (int i = 0; i < words.Length; i++)
        {
            long w = words[i] & _mask;
            destination[i] = (w >= half ? w - modulus : w) / Scale;
        }
    }
}
