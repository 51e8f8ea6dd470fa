using SecureFed.Privacy.Internal;

namespace SecureFed.Privacy;

/// <summary>
/// Rényi DP of one step of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar &amp; Zhang 2019,
/// "Rényi Differential Privacy of the Sampled Gaussian Mechanism", Section 3.3), as computed by Opacus
/// (<c>opacus/accountants/analysis/rdp.py</c>) and dp_accounting (<c>rdp_privacy_accountant.py</c>).
/// </summary>
public static class SubsampledGaussianRdp
{
    /// <summary>
    /// The RDP epsilon at <paramref name="order"/> of one step with sampling rate <paramref name="sampleRate"/>
    /// and noise multiplier <paramref name="noiseMultiplier"/> (noise standard deviation / L2 sensitivity).
    /// Integer orders use the binomial expansion in log space, fractional orders the two-sided erfc series;
    /// <c>q == 1</c> gives the plain Gaussian <c>alpha / (2 sigma^2)</c>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">q outside [0, 1], sigma negative, or order not &gt; 1.</exception>
    public static double Compute(double sampleRate, double noiseMultiplier, double order)
    {
        if (double.IsNaN(sampleRate) || sampleRate < 0 || sampleRate > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(sampleRate), sampleRate, "The sampling rate q must be in [0, 1].");
        }

        if (double.IsNaN(noiseMultiplier) || noiseMultiplier < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(noiseMultiplier), noiseMultiplier, "The noise multiplier must be >= 0.");
        }

        if (double.IsNaN(order) || order <= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(order), order, "RDP orders must be > 1.");
        }

        if (sampleRate == 0)
        {
            return 0;
        }

        if (noiseMultiplier == 0 || double.IsPositiveInfinity(order))
        {
            return double.PositiveInfinity;
        }

        // The plain Gaussian's RDP, alpha / (2 sigma^2), bounds the subsampled one from above (Rényi divergence is jointly
        // quasi-convex, so mixing with the neighbour's distribution never raises it). It is what q = 1 gives, and the
        // answer where the series cannot give one: sigma so small that the bound overflows (the series' terms do too, and
        // the fractional series never met its stopping rule: 1e-300 ran for minutes), or so large that the bound is 0.
        double gaussian = order / (2 * noiseMultiplier * noiseMultiplier);
        if (sampleRate == 1.0 || double.IsPositiveInfinity(gaussian) || gaussian == 0)
        {
            return gaussian;
        }

        bool integer = Math.Floor(order) == order && order < int.MaxValue;
        if (integer)
        {
            return Math.Min(LogAInteger(sampleRate, noiseMultiplier, (int)order) / (order - 1), gaussian);
        }

        double rdp;
        try
        {
            rdp = LogAFractional(sampleRate, noiseMultiplier, order) / (order - 1);
        }
        catch (InvalidOperationException)
        {
            // The series lost its precision (with sigma near 1e8 its two sums agree to every digit and their difference
            // rounds below zero) or overflowed.
            rdp = double.NaN;
        }

        // The fractional series sums terms near 1 and takes a logarithm: once log A is below ~1e-9 it keeps no digit worth
        // reporting (sigma 1e7 gave exactly 0). RDP never falls as the order rises (a Rényi divergence is non-decreasing in
        // its order), so the next integer order, computed without that loss, bounds it: there at most 2x the true value
        // (RDP ~ alpha q^2 / (2 sigma^2) this far out), so crossing the floor as sigma grows lifts RDP near 1e-9 by up to
        // 2x, far below any epsilon it changes. Where the series failed, the bound is looser but still safe.
        if (!(rdp * (order - 1) >= FractionalSeriesFloor) || rdp > gaussian)
        {
            double ceiling = Math.Ceiling(order);
            rdp = ceiling < int.MaxValue ? LogAInteger(sampleRate, noiseMultiplier, (int)ceiling) / (ceiling - 1) : gaussian;
        }

        return Math.Min(rdp, gaussian);
    }

    /// <summary>Below this log A the fractional series is not trusted (see <see cref="Compute"/>).</summary>
    private const double FractionalSeriesFloor = 1e-9;

    /// <summary>
    /// log A for an integer order, A = sum_i C(alpha, i) q^i (1 - q)^(alpha - i) exp((i^2 - i) / (2 sigma^2)), summed as
    /// A = 1 + sum_{i >= 2} C(alpha, i) q^i (1 - q)^(alpha - i) expm1((i^2 - i) / (2 sigma^2)) (the binomial terms sum to
    /// 1, and i = 0, 1 add exp(0) = 1): every term positive, and A - 1 exact however small (for sigma 1e8 it is ~1e-18,
    /// which summing A itself rounds away).
    /// </summary>
    private static double LogAInteger(double q, double sigma, int alpha)
    {
        double logQ = Math.Log(q);
        double log1MinusQ = LogMath.LogOnePlus(-q);
        double twoSigma2 = 2 * sigma * sigma;
        double logAMinusOne = double.NegativeInfinity;
        double logBinom = Math.Log(alpha); // log C(alpha, 1)
        for (int i = 2; i <= alpha; i++)
        {
            logBinom += Math.Log(alpha - i + 1) - Math.Log(i);
            double x = (((double)i * i) - i) / twoSigma2;
            double logExpm1 = x > 30 ? x + LogMath.LogOnePlus(-Math.Exp(-x)) : Math.Log(LogMath.ExpMinusOne(x));
            double s = logBinom + (i * logQ) + ((alpha - i) * log1MinusQ) + logExpm1;
            if (double.IsPositiveInfinity(s))
            {
                // sigma so small (about 1e-153) that a term overflows while alpha / (2 sigma^2) does not: A is beyond any
                // double, and the caller's cap, the plain Gaussian, answers (LogAdd(inf, inf) would be NaN).
                return double.PositiveInfinity;
            }

            logAMinusOne = LogMath.LogAdd(logAMinusOne, s);
        }

        // log(1 + A - 1): directly while A - 1 is small, else in log space.
        return logAMinusOne < 0 ? LogMath.LogOnePlus(Math.Exp(logAMinusOne)) : LogMath.LogAdd(0, logAMinusOne);
    }

    private static double LogAFractional(double q, double sigma, double alpha)
    {
        double logA0 = double.NegativeInfinity;
        double logA1 = double.NegativeInfinity;
        double logQ = Math.Log(q);
        double log1MinusQ = LogMath.LogOnePlus(-q);
        double sigma2 = sigma * sigma;
        double z0 = (sigma2 * Math.Log((1 / q) - 1)) + 0.5;
        double sqrt2Sigma = Math.Sqrt(2) * sigma;
        double logHalf = Math.Log(0.5);

        double logAbsCoef = 0; // binom(alpha, 0) = 1
        bool positive = true;
        for (int i = 0; i < 10_000_000; i++)
        {
            if (i > 0)
            {
                double factor = alpha - i + 1;
                logAbsCoef += Math.Log(Math.Abs(factor)) - Math.Log(i);
                if (factor < 0)
                {
                    positive = !positive;
                }
            }

            double j = alpha - i;
            double logT0 = logAbsCoef + (i * logQ) + (j * log1MinusQ);
            double logT1 = logAbsCoef + (j * logQ) + (i * log1MinusQ);
            double logE0 = logHalf + LogMath.LogErfc((i - z0) / sqrt2Sigma);
            double logE1 = logHalf + LogMath.LogErfc((z0 - j) / sqrt2Sigma);
            double logS0 = logT0 + ((((double)i * i) - i) / (2 * sigma2)) + logE0;
            double logS1 = logT1 + (((j * j) - j) / (2 * sigma2)) + logE1;
            if (double.IsNaN(logS0) || double.IsNaN(logS1) || double.IsPositiveInfinity(logS0) || double.IsPositiveInfinity(logS1))
            {
                throw new InvalidOperationException(
                    $"The fractional-order RDP series overflowed (q = {q}, sigma = {sigma}, alpha = {alpha}).");
            }

            if (positive)
            {
                logA0 = LogMath.LogAdd(logA0, logS0);
                logA1 = LogMath.LogAdd(logA1, logS1);
            }
            else
            {
                logA0 = LogMath.LogSub(logA0, logS0);
                logA1 = LogMath.LogSub(logA1, logS1);
            }

            if (Math.Max(logS0, logS1) < -30)
            {
                return LogMath.LogAdd(logA0, logA1);
            }
        }

        throw new InvalidOperationException(
            $"The fractional-order RDP series did not converge (q = {q}, sigma = {sigma}, alpha = {alpha}).");
    }
}
