using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// The layout of a secure-aggregation input vector: the d quantized coordinates of a site's (clipped, weighted,
/// noised) model update followed by one weight slot, so that the aggregator can form a weighted average from the sum
/// alone. Coordinate i is round_stochastic(clamp(Δ_i, −c, c) · scale) mod 2^b (two's complement); the weight slot is the
/// site's example count capped at <see cref="WeightCap"/>. The scale is the largest that keeps the sum of n inputs plus
/// the noise headroom inside the signed b-bit range, so the modular sum never wraps. With federated evaluation the
/// <see cref="EvaluationLayout"/>'s exact integer count slots follow the weight slot.
/// </summary>
public sealed class UpdateCodec
{
    private readonly FixedPointQuantizer _quantizer;

    private UpdateCodec(int parameterCount, double clipBound, double scale, int bitWidth, int weightCap, EvaluationLayout? evaluation)
    {
        Evaluation = evaluation;
        ParameterCount = parameterCount;
        ClipBound = clipBound;
        Scale = scale;
        BitWidth = bitWidth;
        WeightCap = weightCap;
        _quantizer = new FixedPointQuantizer(clipBound, scale, bitWidth);
    }

    /// <summary>d: model parameters per update.</summary>
    public int ParameterCount { get; }

    /// <summary>m = d + 1 (+ the evaluation slots): words per input vector.</summary>
    public int VectorLength => ParameterCount + 1 + (Evaluation?.SlotCount ?? 0);

    /// <summary>The federated-evaluation slots after the weight slot, or null when the round carries no evaluation.</summary>
    public EvaluationLayout? Evaluation { get; }

    /// <summary>Index of the first evaluation slot (d + 1).</summary>
    public int EvaluationOffset => ParameterCount + 1;

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
    public static UpdateCodec Plan(int parameterCount, double clipBound, int cohortSize, double noiseHeadroom, int weightCap, int bitWidth = 32, EvaluationLayout? evaluation = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parameterCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(cohortSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(weightCap, 1);
        if (!(clipBound > 0) || double.IsInfinity(clipBound))
        {
            throw new ArgumentOutOfRangeException(nameof(clipBound), clipBound, "The clip bound must be positive and finite.");
        }

        if (!(noiseHeadroom >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(noiseHeadroom), noiseHeadroom, "The noise headroom must be non-negative.");
        }

        // An infinite headroom (a site noise multiplier so large that 20 σ overflows, e.g. 1e308) fits no word, as a merely
        // huge one does not: the same error below, which says what to lower, rather than one naming a parameter.

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

        if (evaluation?.CheckFits(cohortSize, bitWidth) is string tooMany)
        {
            throw new InvalidOperationException(tooMany + ".");
        }

        long maxAbs = (long)Math.Ceiling((clipBound * scale) + 1);
        long headroom = (long)Math.Ceiling(noiseHeadroom * scale);
        if ((cohortSize * (double)maxAbs) + headroom > budget)
        {
            // At the rounding edge the ceilings above add up to n + 1 units the closed form did not count (about a third
            // of parameter sets with a small clip bound): leave room for them.
            scale = Math.Floor((budget - (2.0 * cohortSize) - 1) / ((cohortSize * clipBound) + noiseHeadroom));
            if (scale < 1)
            {
                throw new InvalidOperationException(
                    $"{cohortSize} sites with clip {clipBound} and noise headroom {noiseHeadroom} do not fit in {bitWidth}-bit words; lower the clip bound or the noise.");
            }

            maxAbs = (long)Math.Ceiling((clipBound * scale) + 1);
            headroom = (long)Math.Ceiling(noiseHeadroom * scale);
        }

        // Cross-check with the crypto library's planner: it must agree that the sum fits.
        int needed = BitWidthPlanner.ForSum(maxAbs, cohortSize, headroom);
        if (needed > bitWidth)
        {
            throw new InvalidOperationException($"The planned sum needs {needed} bits, more than {bitWidth}.");
        }

        return new UpdateCodec(parameterCount, clipBound, scale, bitWidth, weightCap, evaluation);
    }

    /// <summary>Recreates a codec from announced parameters (as an agent does from the round configuration).</summary>
    public static UpdateCodec FromParameters(int parameterCount, double clipBound, double scale, int bitWidth, int weightCap, EvaluationLayout? evaluation = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(parameterCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(weightCap, 1);
        return new UpdateCodec(parameterCount, clipBound, scale, bitWidth, weightCap, evaluation);
    }

    /// <summary>
    /// Encodes an update: quantizes <paramref name="update"/> (length d) with unbiased stochastic rounding into the
    /// first d words of <paramref name="destination"/>, writes min(examples, cap) into the weight slot and zeros into
    /// the evaluation slots (see <see cref="EncodeEvaluation"/>).
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
        destination[EvaluationOffset..].Clear();
    }

    /// <summary>
    /// Writes a site's evaluation counts (null = none) into the evaluation slots of <paramref name="destination"/>
    /// (a whole input vector); nothing when the round carries no evaluation.
    /// </summary>
    public void EncodeEvaluation(EvaluationCounts? counts, Span<uint> destination)
    {
        if (destination.Length != VectorLength)
        {
            throw new ArgumentException($"Expected a destination of {VectorLength} words; got {destination.Length}.", nameof(destination));
        }

        Evaluation?.Encode(counts, destination[EvaluationOffset..]);
    }

    /// <summary>
    /// Decodes and checks the summed evaluation slots of <paramref name="contributors"/> inputs (see
    /// <see cref="EvaluationLayout.Decode"/>); null with the reason when the round carries no evaluation or the sum is impossible.
    /// </summary>
    public FederatedEvaluation? DecodeEvaluation(ReadOnlySpan<uint> sum, int contributors, out string? rejection)
    {
        if (sum.Length != VectorLength)
        {
            throw new ArgumentException($"Expected a sum of {VectorLength} words; got {sum.Length}.", nameof(sum));
        }

        return DecodeEvaluationFromTail(sum[ParameterCount..], contributors, out rejection);
    }

    /// <summary>Words of the sum after its d coordinates: the weight slot, then any evaluation slots.</summary>
    public int TailLength => VectorLength - ParameterCount;

    /// <summary>
    /// As <see cref="DecodeEvaluation"/>, from the sum's tail only (its words from index d on, <see cref="TailLength"/>
    /// of them), so that a sum read a slice at a time need not be put together first.
    /// </summary>
    public FederatedEvaluation? DecodeEvaluationFromTail(ReadOnlySpan<uint> tail, int contributors, out string? rejection)
    {
        if (tail.Length != TailLength)
        {
            throw new ArgumentException($"Expected a tail of {TailLength} words; got {tail.Length}.", nameof(tail));
        }

        if (Evaluation is null)
        {
            rejection = "the round carries no federated evaluation";
            return null;
        }

        return Evaluation.Decode(tail[1..], contributors, BitWidth, out rejection);
    }

    /// <summary>As <see cref="DecodeTotalWeight"/>, from the sum's tail only (its words from index d on).</summary>
    public long DecodeTotalWeightFromTail(ReadOnlySpan<uint> tail)
    {
        if (tail.Length != TailLength)
        {
            throw new ArgumentException($"Expected a tail of {TailLength} words; got {tail.Length}.", nameof(tail));
        }

        return ModularVector.ToSigned(tail[0], BitWidth);
    }

    /// <summary>The weight a site with <paramref name="examples"/> examples puts in its slot.</summary>
    public long Weight(long examples) => Math.Min(Math.Max(examples, 0), WeightCap);

    /// <summary>
    /// Checks the decoded total weight W of <paramref name="contributors"/> sites: every honest site puts a weight in
    /// [1, cap] into its slot (an agent whose trainer used no examples withdraws instead of sending weight 0), so
    /// contributors ≤ W ≤ contributors × cap. Returns why W is impossible, or null when it is in range. The aggregator
    /// sees only the sum, so a single site's slot cannot be checked on its own: a site that lies within [1, cap] is not
    /// detected here, nor one whose slot moves W elsewhere within the range (a W lowered towards the number of contributors
    /// scales the average up): <see cref="CheckDeclaredWeights"/> checks W against the weights the sites declared.
    /// </summary>
    public string? CheckTotalWeight(long totalWeight, int contributors)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(contributors);
        long limit = (long)contributors * WeightCap;
        if (totalWeight <= 0)
        {
            return $"the aggregated weight is {totalWeight}; nothing to average";
        }

        if (totalWeight < contributors)
        {
            return $"the aggregated weight W = {totalWeight} is below the {contributors} contributors' minimum of 1 each: some site put less than 1 (or a wrapped value) into its weight slot; the model is unchanged";
        }

        if (totalWeight > limit)
        {
            return $"the aggregated weight W = {totalWeight} exceeds {contributors} contributors × weight cap {WeightCap} = {limit}: some site put more than the cap into its weight slot";
        }

        return null;
    }

    /// <summary>
    /// Checks a decoded total weight against the weights the contributors declared outside the sum (one entry per
    /// contributor; null where a contributor declared none): W must equal the declared sum D plus, for each of the u
    /// contributors without a declaration, something in [1, cap], i.e. D + u ≤ W ≤ D + u·cap. A site whose weight slot
    /// differs from its declaration (a wrapped value that lowers W towards the number of contributors and so scales the
    /// average up) makes W miss this range. The undeclared contributors' range is shared slack: a hostile site can use an
    /// undeclared (older) agent's cap − 1 of it, so only a cohort that declared in full pins W exactly.
    /// Returns the abort reason, or null. Declarations outside [1, cap] are refused on receipt; here they are an argument error.
    /// </summary>
    public string? CheckDeclaredWeights(long totalWeight, IReadOnlyList<(string Site, long? Weight)> contributors)
    {
        ArgumentNullException.ThrowIfNull(contributors);
        long declared = 0;
        int silent = 0;
        foreach ((string site, long? weight) in contributors)
        {
            if (weight is null)
            {
                silent++;
                continue;
            }

            if (weight < 1 || weight > WeightCap)
            {
                throw new ArgumentOutOfRangeException(nameof(contributors), $"site '{site}' declared weight {weight}, outside [1, {WeightCap}]");
            }

            declared += weight.Value;
        }

        long low = declared + silent;
        long high = declared + ((long)silent * WeightCap);
        if (totalWeight >= low && totalWeight <= high)
        {
            return null;
        }

        string expected = silent == 0
            ? $"the {contributors.Count} contributors' declared weights, {declared}"
            : $"the range [{low}, {high}] that the declared weights ({declared}, of {contributors.Count - silent} contributors) and {silent} undeclared weight{(silent == 1 ? "" : "s")} of 1 to {WeightCap} allow";
        return $"the aggregated weight W = {totalWeight} differs from {expected}: some site's weight slot does not hold the weight it declared (a wrong or wrapped value would scale the average); the model is unchanged";
    }

    /// <summary>
    /// The total weight W of a sum (its weight slot as a signed b-bit integer), without decoding the coordinates: the
    /// same value as <see cref="Decode"/>'s.
    /// </summary>
    public long DecodeTotalWeight(ReadOnlySpan<uint> sum)
    {
        if (sum.Length != VectorLength)
        {
            throw new ArgumentException($"Expected a sum of {VectorLength} words; got {sum.Length}.", nameof(sum));
        }

        return ModularVector.ToSigned(sum[ParameterCount], BitWidth);
    }

    /// <summary>
    /// Decodes a run of summed coordinates (any contiguous part of the sum's first d words, e.g. one slice) into
    /// <paramref name="destination"/> (update units), value for value as <see cref="Decode"/> does for the whole sum.
    /// </summary>
    public void DecodeCoordinates(ReadOnlySpan<uint> coordinates, Span<double> destination)
    {
        if (coordinates.Length > ParameterCount)
        {
            throw new ArgumentException($"Expected at most {ParameterCount} coordinates; got {coordinates.Length}.", nameof(coordinates));
        }

        _quantizer.Dequantize(coordinates, destination);
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
