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
        _parameters = new Parameters(t, n, d, 2 * n * d * t * t);
        _cachedSigma = sigma;
        return _parameters;
    }

    private long SampleOne(Parameters p)
    {
        while (true)
        {
            long y = SampleDiscreteLaplace(p.T);

            // gamma = (|y| - sigma^2 / t)^2 / (2 sigma^2) = (|y| t D - N)^2 / (2 N D t^2), sigma^2 = N / D.
            BigInteger a = (new BigInteger(Math.Abs(y)) * p.T * p.SigmaSquaredDenominator) - p.SigmaSquaredNumerator;
            if (BernoulliExp(a * a, p.GammaDenominator))
            {
                return y;
            }
        }
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
        ulong T, BigInteger SigmaSquaredNumerator, BigInteger SigmaSquaredDenominator, BigInteger GammaDenominator);
}
