using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// The layout of a secure-aggregation input vector: the d quantized coordinates of a site's (clipped, weighted,
/// noised) model update followed by one weight slot, so that the aggregator can form a weighted average from the sum
/// alone. Coordinate i is round_stochastic(clamp(Δ_i, −c, c) · scale) mod 2^b (two's complement); the weight slot is the
/// site's example count capped at <see cref="WeightCap"/>. The scale is the largest that keeps the sum of n inputs plus
/// the noise headroom inside the signed b-bit range, so the modular sum never wraps.
/// </summary>
public sealed class UpdateCodec
{
    private readonly FixedPointQuantizer _quantizer;

    private UpdateCodec(int parameterCount, double clipBound, double scale, int bitWidth, int weightCap)
    {
        ParameterCount = parameterCount;
        ClipBound = clipBound;
        Scale = scale;
        BitWidth = bitWidth;
        WeightCap = weightCap;
        _quantizer = new FixedPointQuantizer(clipBound, scale, bitWidth);
    }

    /// <summary>d: model parameters per update.</summary>
    public int ParameterCount { get; }

    /// <summary>m = d + 1: words per input vector.</summary>
    public int VectorLength => ParameterCount + 1;

    /// <summary>c: per-coordinate clip (an L2 bound S implies |Δ_i| ≤ S, so c = S clips nothing extra).</summary>
    public double ClipBound { get; }

    /// <summary>Fixed-point scale (quantization step 1/scale).</summary>
    public double Scale { get; }

    /// <summary>b.</summary>
    public int BitWidth { get; }

    /// <summary>Cap on the example count carried in the weight slot.</summary>
    public int WeightCap { get; }

    /// <summary>
    /// Plans the codec so that the sum of <paramref name="cohortSize"/> inputs plus <paramref name="noiseHeadroom"/>
    /// (in units of the update, i.e. before scaling) cannot wrap in <paramref name="bitWidth"/> bits.
    /// </summary>
    /// <exception cref="InvalidOperationException">No scale ≥ 1 fits (too many sites or too much noise for b bits).</exception>
    public static UpdateCodec Plan(int parameterCount, double clipBound, int cohortSize, double noiseHeadroom, int weightCap, int bitWidth = 32)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parameterCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(cohortSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(weightCap, 1);
        if (!(clipBound > 0) || double.IsInfinity(clipBound))
        {
            throw new ArgumentOutOfRangeException(nameof(clipBound), clipBound, "The clip bound must be positive and finite.");
        }

        if (!(noiseHeadroom >= 0) || double.IsInfinity(noiseHeadroom))
        {
            throw new ArgumentOutOfRangeException(nameof(noiseHeadroom), noiseHeadroom, "The noise headroom must be non-negative and finite.");
        }

        double budget = Math.Pow(2, bitWidth - 1) - 1;
        // n·(c·scale + 1) + headroom·scale ≤ budget  (the +1 covers stochastic rounding up)
        double scale = Math.Floor((budget - cohortSize) / ((cohortSize * clipBound) + noiseHeadroom));
        if (scale < 1)
        {
            throw new InvalidOperationException(
                $"{cohortSize} sites with clip {clipBound} and noise headroom {noiseHeadroom} do not fit in {bitWidth}-bit words; lower the clip bound or the noise.");
        }

        if ((long)cohortSize * weightCap > budget)
        {
            throw new InvalidOperationException($"{cohortSize} sites × weight cap {weightCap} does not fit in {bitWidth}-bit words.");
        }

        long maxAbs = (long)Math.Ceiling((clipBound * scale) + 1);
        long headroom = (long)Math.Ceiling(noiseHeadroom * scale);
        // Cross-check with the crypto library's planner: it must agree that the sum fits.
        int needed = BitWidthPlanner.ForSum(maxAbs, cohortSize, headroom);
        if (needed > bitWidth)
        {
            throw new InvalidOperationException($"The planned sum needs {needed} bits, more than {bitWidth}.");
        }

        return new UpdateCodec(parameterCount, clipBound, scale, bitWidth, weightCap);
    }

    /// <summary>Recreates a codec from announced parameters (as an agent does from the round configuration).</summary>
    public static UpdateCodec FromParameters(int parameterCount, double clipBound, double scale, int bitWidth, int weightCap)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parameterCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(weightCap, 1);
        return new UpdateCodec(parameterCount, clipBound, scale, bitWidth, weightCap);
    }

    /// <summary>
    /// Encodes an update: quantizes <paramref name="update"/> (length d) with unbiased stochastic rounding into the
    /// first d words of <paramref name="destination"/> and writes min(examples, cap) into the weight slot.
    /// </summary>
    public void Encode(ReadOnlySpan<float> update, long examples, Span<uint> destination, IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (update.Length != ParameterCount || destination.Length != VectorLength)
        {
            throw new ArgumentException($"Expected an update of {ParameterCount} values and a destination of {VectorLength} words; got {update.Length} and {destination.Length}.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(examples);
        _quantizer.Quantize(update, destination[..ParameterCount], random);
        destination[ParameterCount] = (uint)Math.Min(examples, WeightCap);
    }

    /// <summary>The weight a site with <paramref name="examples"/> examples puts in its slot.</summary>
    public long Weight(long examples) => Math.Min(Math.Max(examples, 0), WeightCap);

    /// <summary>
    /// Checks the decoded total weight W of <paramref name="contributors"/> sites: every honest site puts a weight in
    /// [0, cap] into its slot, so 1 ≤ W ≤ contributors × cap. Returns why W is impossible, or null when it is in range.
    /// The aggregator sees only the sum, so a single site's slot cannot be checked on its own: a site that lies within
    /// [0, cap] is not detected.
    /// </summary>
    public string? CheckTotalWeight(long totalWeight, int contributors)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(contributors);
        long limit = (long)contributors * WeightCap;
        if (totalWeight <= 0)
        {
            return $"the aggregated weight is {totalWeight}; nothing to average";
        }

        if (totalWeight > limit)
        {
            return $"the aggregated weight W = {totalWeight} exceeds {contributors} contributors × weight cap {WeightCap} = {limit}: some site put more than the cap into its weight slot";
        }

        return null;
    }

    /// <summary>Decodes a sum: the summed update (in update units) and the total weight.</summary>
    public (double[] UpdateSum, long TotalWeight) Decode(ReadOnlySpan<uint> sum)
    {
        if (sum.Length != VectorLength)
        {
            throw new ArgumentException($"Expected a sum of {VectorLength} words; got {sum.Length}.", nameof(sum));
        }

        double[] values = new double[ParameterCount];
        _quantizer.Dequantize(sum[..ParameterCount], values);
        long weight = ModularVector.ToSigned(sum[ParameterCount], BitWidth);
        return (values, weight);
    }
}
