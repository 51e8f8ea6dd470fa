namespace SecureFed.PrivacyAudit.Internal;

/// <summary>Binomial(n, q) probabilities in log space, with q given through ε as e^ε / (1 + e^ε) so that q near 1 stays exact.</summary>
internal static class Binomial
{
    /// <summary>ln P[Binomial(n, q) = k] with ln q and ln(1 − q) given.</summary>
    public static double LogPmf(int n, int k, double logQ, double logOneMinusQ)
    {
        if (k < 0 || k > n)
        {
            return double.NegativeInfinity;
        }

        double a = k == 0 ? 0 : k * logQ;
        double b = k == n ? 0 : (n - k) * logOneMinusQ;
        return LogChoose(n, k) + a + b;
    }

    /// <summary>ln q and ln(1 − q) for q = 1 / (1 + e^−ε), without cancellation for large ε.</summary>
    public static (double LogQ, double LogOneMinusQ) RandomizedResponse(double epsilon)
    {
        double softplus = Math.Log(1 + Math.Exp(-epsilon)); // ln(1 + e^−ε)
        return (-softplus, -epsilon - softplus);
    }

    /// <summary>ln C(n, k).</summary>
    public static double LogChoose(int n, int k) => LogFactorial(n) - LogFactorial(k) - LogFactorial(n - k);

    /// <summary>ln n! (exact sum of logs up to 256, Stirling's series beyond: error below 1e-12).</summary>
    public static double LogFactorial(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (n < 256)
        {
            double sum = 0;
            for (int i = 2; i <= n; i++)
            {
                sum += Math.Log(i);
            }

            return sum;
        }

        double x = n + 1.0;
        // ln Γ(x) = (x − ½) ln x − x + ½ ln 2π + 1/(12x) − 1/(360x³) + 1/(1260x⁵)
        return ((x - 0.5) * Math.Log(x)) - x + (0.5 * Math.Log(2 * Math.PI)) + (1 / (12 * x)) - (1 / (360 * x * x * x)) + (1 / (1260 * Math.Pow(x, 5)));
    }
}
