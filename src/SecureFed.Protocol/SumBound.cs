using System.Globalization;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// The aggregator's check of an unmasked sum against what honest sites can produce (docs/PROTOCOL.md, "The sum bound").
/// Secure aggregation only sums, modulo 2^b, so a site that edits its own vector before masking is not seen; but every
/// honest site u sends q_u = round_stochastic(ω_u·Δ_u·scale) + ν_u with ‖Δ_u‖ ≤ S (its clip, the codec's
/// <see cref="UpdateCodec.ClipBound"/>), ω_u = w_u / cap, and ν_u its discrete Gaussian share N_Z(0, σ²) per coordinate.
/// So the decoded coordinates U (quantized units) of n honest inputs with total weight W are s + e with
/// ‖s‖ ≤ s_max = (W / cap)·S·scale·(1 + 10⁻⁵) + n·√d·2⁻³² (float rounding of ω·Δ; the rounding's bias below 2⁻³² per
/// coordinate) and e = Σ (rounding error − its mean) + Σ ν_u, whose coordinates are independent and sub-Gaussian with
/// variance proxy v = n·(σ² + 1/4) (Hoeffding's lemma for an error in an interval of length 1; the discrete Gaussian is
/// σ²-sub-Gaussian, Canonne, Kamath &amp; Steinke 2020). Hence, each with probability at least 1 − 2⁻⁴² (x = 42 ln 2):
/// ‖e‖² ≤ v·(d + 2√(d x) + 2x) (Laurent &amp; Massart 2000: the proof uses only the moment generating function of χ²_d,
/// which bounds that of ‖e‖²/v), and ⟨s, e⟩ ≤ ‖s‖·√(2 v x); and with probability at least 1 − 2⁻⁴¹ every coordinate has
/// |e_i| ≤ τ = √(2 v ln(2 d·2⁴¹)). An honest sum therefore breaks
/// <list type="bullet">
/// <item>‖U‖² ≤ s_max² + 2·s_max·√(2 v x) + v·(d + 2√(d x) + 2x), or</item>
/// <item>|U_i| ≤ s_max' + τ for every i (s_max' with the bias n·2⁻³² of one coordinate),</item>
/// </list>
/// with probability at most 2⁻⁴⁰. Only the d model coordinates count: the weight slot and the federated-evaluation
/// slots are checked on their own (<see cref="UpdateCodec.CheckTotalWeight"/>, <see cref="EvaluationLayout.Decode"/>).
/// The sums of squares are exact (128-bit integers), so the result does not depend on how the sum is cut into runs.
/// </summary>
public sealed class SumBound
{
    /// <summary>log₂ of the largest probability with which an honest round's sum breaks the bound.</summary>
    public const int FailureProbabilityLog2 = -40;

    /// <summary>Relative slack on ‖Σ ω_u Δ_u‖ for the float32 rounding of the clipped, weighted update.</summary>
    public const double FloatSlack = 1e-5;

    private static readonly double TailX = 42 * Math.Log(2); // each of the two L2 events: 2^-42
    private static readonly double TwoPow32 = Math.Pow(2, 32);

    private readonly UpdateCodec _codec;
    private UInt128 _squares;
    private long _largest;
    private int _largestAt = -1;
    private int _position;

    /// <summary>Starts the check of a sum laid out by <paramref name="codec"/>.</summary>
    public SumBound(UpdateCodec codec)
    {
        ArgumentNullException.ThrowIfNull(codec);
        _codec = codec;
    }

    /// <summary>Σ U_i² over the model coordinates added so far (quantized units, exact).</summary>
    public UInt128 SquaredNorm => _squares;

    /// <summary>The largest |U_i| added so far (quantized units).</summary>
    public long LargestCoordinate => _largest;

    /// <summary>
    /// Takes the next run of the sum, starting at word <paramref name="offset"/> (word 0 first, in order, as
    /// <see cref="UpdateCodec.VectorLength"/> words in all); words past the d coordinates (the tail) are ignored.
    /// </summary>
    /// <exception cref="InvalidOperationException">The run does not start where the previous one ended.</exception>
    public void Add(int offset, ReadOnlySpan<uint> words)
    {
        if (offset != _position)
        {
            throw new InvalidOperationException($"The sum's words must come in order: a run at word {offset}, expected word {_position}.");
        }

        _position += words.Length;
        int coordinates = Math.Clamp(_codec.ParameterCount - offset, 0, words.Length);
        int bitWidth = _codec.BitWidth;
        UInt128 squares = _squares;
        for (int i = 0; i < coordinates; i++)
        {
            long q = Math.Abs(ModularVector.ToSigned(words[i], bitWidth));
            squares += (UInt128)(ulong)(q * q); // |q| ≤ 2^31, so q² < 2^63
            if (q > _largest)
            {
                _largest = q;
                _largestAt = offset + i;
            }
        }

        _squares = squares;
    }

    /// <summary>
    /// The bounds (quantized units) an honest sum of <paramref name="contributors"/> inputs with decoded total weight
    /// <paramref name="totalWeight"/> and per-site noise <paramref name="sigmaSite"/> (quantized units; 0 = none) stays
    /// within, except with probability 2⁻⁴⁰: on the L2 norm of the d coordinates and on each coordinate.
    /// </summary>
    public static (double Norm, double Coordinate) Limits(UpdateCodec codec, long totalWeight, int contributors, double sigmaSite)
    {
        ArgumentNullException.ThrowIfNull(codec);
        ArgumentOutOfRangeException.ThrowIfLessThan(contributors, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(totalWeight);
        if (!(sigmaSite >= 0) || !double.IsFinite(sigmaSite))
        {
            throw new ArgumentOutOfRangeException(nameof(sigmaSite), sigmaSite, "The per-site noise must be finite and ≥ 0.");
        }

        double d = codec.ParameterCount;
        double n = contributors;
        double signal = (double)totalWeight / codec.WeightCap * codec.ClipBound * codec.Scale * (1 + FloatSlack);
        double bias = n / TwoPow32;
        double v = n * ((sigmaSite * sigmaSite) + 0.25);
        double s = signal + (bias * Math.Sqrt(d));
        double x = TailX;
        double squared = (s * s) + (2 * s * Math.Sqrt(2 * v * x)) + (v * (d + (2 * Math.Sqrt(d * x)) + (2 * x)));
        double tau = Math.Sqrt(2 * v * (Math.Log(2 * d) + (41 * Math.Log(2))));
        return (Math.Sqrt(squared), signal + bias + tau);
    }

    /// <summary>
    /// Checks the whole sum (after every word was added): null when it is within <see cref="Limits"/>, else why not, in
    /// words for the audit log (values in update units).
    /// </summary>
    /// <exception cref="InvalidOperationException">Words of the sum are missing.</exception>
    public string? Check(long totalWeight, int contributors, double sigmaSite)
    {
        if (_position != _codec.VectorLength)
        {
            throw new InvalidOperationException($"The sum was read up to word {_position} of {_codec.VectorLength}.");
        }

        if (totalWeight < 1)
        {
            return $"the aggregated weight is {totalWeight}; nothing to average";
        }

        (double normLimit, double coordinateLimit) = Limits(_codec, totalWeight, contributors, sigmaSite);
        double norm = Math.Sqrt((double)_squares);
        double scale = _codec.Scale;
        if (norm > normLimit)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"the decoded sum's norm {norm / scale:G6} exceeds the bound {normLimit / scale:G6} of {contributors} honest sites' clipped updates (clip {_codec.ClipBound:G6}, total weight {totalWeight} of cap {_codec.WeightCap} each) and noise (sigma {sigmaSite / scale:G6} per site): at least one site sent an input outside its clip or a wrong weight; the model is unchanged");
        }

        if (_largest > coordinateLimit)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"coordinate {_largestAt} of the decoded sum is {_largest / scale:G6} in absolute value, beyond the bound {coordinateLimit / scale:G6} of {contributors} honest sites' clipped updates (clip {_codec.ClipBound:G6}, total weight {totalWeight} of cap {_codec.WeightCap} each) and noise (sigma {sigmaSite / scale:G6} per site): at least one site sent an input outside its clip or a wrong weight; the model is unchanged");
        }

        return null;
    }

    /// <summary>As <see cref="Check"/> on a whole sum (its d coordinates, the weight slot and any evaluation slots), its W decoded from it.</summary>
    public static string? CheckSum(UpdateCodec codec, ReadOnlySpan<uint> sum, int contributors, double sigmaSite)
    {
        ArgumentNullException.ThrowIfNull(codec);
        var bound = new SumBound(codec);
        bound.Add(0, sum);
        return bound.Check(codec.DecodeTotalWeight(sum), contributors, sigmaSite);
    }
}
