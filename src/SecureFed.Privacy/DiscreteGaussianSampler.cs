using System.Numerics;

using SecureFed.Crypto;
using SecureFed.Privacy.Internal;

namespace SecureFed.Privacy;

/// <summary>
/// Exact sampler of the discrete Gaussian <c>N_Z(0, sigma^2)</c>, <c>P[X = x] ∝ exp(-x^2 / (2 sigma^2))</c> on the
/// integers, after Canonne, Kamath &amp; Steinke 2020 ("The Discrete Gaussian for Differential Privacy",
/// Algorithms 1–3): Bernoulli(exp(-gamma)) from exact rational Bernoulli trials, a discrete Laplace proposal with
/// scale <c>t = floor(sigma) + 1</c>, and rejection to the Gaussian. <c>sigma^2</c> is the exact rational square of
/// the given double; every random bit comes from the injected <see cref="IRandomSource"/> and no floating-point
/// operation influences the output (cf. Mironov 2012 on floating-point attacks).
/// </summary>
/// <remarks>Not thread-safe: use one instance per thread.</remarks>
public sealed class DiscreteGaussianSampler
{
    /// <summary>The largest supported sigma (keeps the Laplace scale and intermediate integers in range).</summary>
    public const double MaxSigma = 1e12;

    private const int FastDenominatorBits = 100;

    private readonly RandomWords _random;
    private double _cachedSigma = double.NaN;
    private Parameters _parameters;

    /// <summary>Creates a sampler drawing all randomness from <paramref name="random"/>.</summary>
    public DiscreteGaussianSampler(IRandomSource random)
    {
        ArgumentNullException.ThrowIfNull(random);
        _random = new RandomWords(random);
    }

    /// <summary>One sample of <c>N_Z(0, sigma^2)</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">sigma not finite, not &gt; 0, or above <see cref="MaxSigma"/>.</exception>
    public long Sample(double sigma)
    {
        Parameters p = ParametersFor(sigma);
        return SampleOne(p);
    }

    /// <summary>Fills <paramref name="destination"/> with independent samples of <c>N_Z(0, sigma^2)</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">sigma not finite, not &gt; 0, or above <see cref="MaxSigma"/>.</exception>
    public void Sample(double sigma, Span<long> destination)
    {
        Parameters p = ParametersFor(sigma);
        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = SampleOne(p);
        }
    }

    /// <summary>Wipes buffered, not yet used randomness (call when done with a batch of secret noise).</summary>
    public void ClearBufferedRandomness() => _random.Clear();

    /// <summary>Splits a positive finite double into an exact ratio numerator / 2^shift (shift may be 0).</summary>
    internal static (BigInteger Numerator, BigInteger Denominator) ExactSquare(double sigma)
    {
        long bits = BitConverter.DoubleToInt64Bits(sigma);
        int exponent = (int)((bits >> 52) & 0x7FF);
        long mantissa = bits & 0xF_FFFF_FFFF_FFFFL;
        if (exponent == 0)
        {
            exponent = 1; // subnormal
        }
        else
        {
            mantissa |= 1L << 52;
        }

        exponent -= 1075; // sigma = mantissa * 2^exponent
        while ((mantissa & 1) == 0 && mantissa != 0)
        {
            mantissa >>= 1;
            exponent++;
        }

        BigInteger m2 = (BigInteger)mantissa * mantissa;
        return exponent >= 0
            ? (m2 << (2 * exponent), BigInteger.One)
            : (m2, BigInteger.One << (-2 * exponent));
    }

    private Parameters ParametersFor(double sigma)
    {
        if (!double.IsFinite(sigma) || sigma <= 0 || sigma > MaxSigma)
        {
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, $"sigma must be finite, > 0 and <= {MaxSigma:G}.");
        }

        if (sigma.Equals(_cachedSigma))
        {
            return _parameters;
        }

        (BigInteger n, BigInteger d) = ExactSquare(sigma);
        ulong t = (ulong)Math.Floor(sigma) + 1; // exact: sigma <= 1e12 < 2^53
        BigInteger gammaDenominator = 2 * n * d * t * t;

        // Fast path: when t*D, N and the gamma denominator are small (e.g. sigma a multiple of 2^-8 below ~1e5, as
        // DistributedDp.Plan produces) the same exact arithmetic runs in 128-bit integers without allocation.
        bool fast = gammaDenominator < (BigInteger.One << FastDenominatorBits) && (t * d) < (BigInteger.One << 62) && n < (BigInteger.One << 126);
        _parameters = new Parameters(
            t,
            n,
            d,
            gammaDenominator,
            fast,
            fast ? (UInt128)(t * d) : UInt128.Zero,
            fast ? (UInt128)n : UInt128.Zero,
            fast ? (UInt128)gammaDenominator : UInt128.Zero);
        _cachedSigma = sigma;
        return _parameters;
    }

    private long SampleOne(Parameters p)
    {
        while (true)
        {
            long y = SampleDiscreteLaplace(p.T);
            if (p.Fast && TryFastAccept(y, p, out bool accepted))
            {
                if (accepted)
                {
                    return y;
                }

                continue;
            }

            // gamma = (|y| - sigma^2 / t)^2 / (2 sigma^2) = (|y| t D - N)^2 / (2 N D t^2), sigma^2 = N / D.
            BigInteger a = (new BigInteger(Math.Abs(y)) * p.T * p.SigmaSquaredDenominator) - p.SigmaSquaredNumerator;
            if (BernoulliExp(a * a, p.GammaDenominator))
            {
                return y;
            }
        }
    }

    /// <summary>
    /// The Gaussian acceptance step in 128-bit arithmetic. Returns false (before using any randomness) when an
    /// intermediate would not fit, and the BigInteger path runs instead.
    /// </summary>
    private bool TryFastAccept(long y, Parameters p, out bool accepted)
    {
        accepted = false;
        ulong absY = (ulong)Math.Abs(y);
        if (absY >= (1UL << 62))
        {
            return false;
        }

        UInt128 scaled = absY * p.FastTD; // < 2^124
        UInt128 a = scaled >= p.FastN ? scaled - p.FastN : p.FastN - scaled;
        if (a >= ((UInt128)1 << 63))
        {
            return false;
        }

        UInt128 numerator = a * a;
        UInt128 whole = numerator / p.FastGammaDenominator;
        UInt128 fraction = numerator - (whole * p.FastGammaDenominator);
        for (UInt128 i = UInt128.Zero; i < whole; i++)
        {
            if (!BernoulliExpFraction(1, 1))
            {
                return true;
            }
        }

        UInt128 k = UInt128.One;
        while (k < ((UInt128)1 << 9)
            ? _random.Bernoulli(fraction, p.FastGammaDenominator * k)
            : _random.Bernoulli((BigInteger)fraction, (BigInteger)p.FastGammaDenominator * (BigInteger)k))
        {
            k++;
        }

        accepted = (k & UInt128.One) == UInt128.One;
        return true;
    }

    /// <summary>Discrete Laplace with scale t (CKS Algorithm 2 with s = 1).</summary>
    private long SampleDiscreteLaplace(ulong t)
    {
        while (true)
        {
            ulong u = _random.Uniform(t);
            if (!BernoulliExpFraction(u, t))
            {
                continue;
            }

            ulong v = 0;
            while (BernoulliExpFraction(1, 1))
            {
                v++;
            }

            ulong x = u + (t * v);
            bool negative = _random.NextBit();
            if (negative && x == 0)
            {
                continue;
            }

            return negative ? -(long)x : (long)x;
        }
    }

    /// <summary>Bernoulli(exp(-n/d)) for 0 &lt;= n &lt;= d (CKS Algorithm 1, gamma in [0, 1]).</summary>
    private bool BernoulliExpFraction(ulong n, ulong d)
    {
        ulong k = 1;
        while (_random.Bernoulli(n, checked(d * k)))
        {
            k++;
        }

        return (k & 1) == 1;
    }

    /// <summary>Bernoulli(exp(-n/d)) for any rational gamma = n/d &gt;= 0 (CKS Algorithm 1).</summary>
    private bool BernoulliExp(BigInteger n, BigInteger d)
    {
        BigInteger whole = BigInteger.DivRem(n, d, out BigInteger fraction);
        for (BigInteger i = BigInteger.Zero; i < whole; i++)
        {
            if (!BernoulliExpFraction(1, 1))
            {
                return false;
            }
        }

        BigInteger k = BigInteger.One;
        while (_random.Bernoulli(fraction, d * k))
        {
            k++;
        }

        return !k.IsEven;
    }

    private readonly record struct Parameters(
        ulong T,
        BigInteger SigmaSquaredNumerator,
        BigInteger SigmaSquaredDenominator,
        BigInteger GammaDenominator,
        bool Fast,
        UInt128 FastTD,
        UInt128 FastN,
        UInt128 FastGammaDenominator);
}
