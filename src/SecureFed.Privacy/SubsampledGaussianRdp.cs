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

        if (sampleRate == 1.0)
        {
            return order / (2 * noiseMultiplier * noiseMultiplier);
        }

        double logA = Math.Floor(order) == order && order < int.MaxValue
            ? LogAInteger(sampleRate, noiseMultiplier, (int)order)
            : LogAFractional(sampleRate, noiseMultiplier, order);
        return logA / (order - 1);
    }

    private static double LogAInteger(double q, double sigma, int alpha)
    {
        double logQ = Math.Log(q);
        double log1MinusQ = LogMath.LogOnePlus(-q);
        double twoSigma2 = 2 * sigma * sigma;
        double logA = double.NegativeInfinity;
        double logBinom = 0; // log C(alpha, 0)
        for (int i = 0; i <= alpha; i++)
        {
            if (i > 0)
            {
                logBinom += Math.Log(alpha - i + 1) - Math.Log(i);
            }

            double s = logBinom + (i * logQ) + ((alpha - i) * log1MinusQ) + ((((double)i * i) - i) / twoSigma2);
            logA = LogMath.LogAdd(logA, s);
        }

        return logA;
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
