namespace SecureFed.PrivacyAudit.Internal;

/// <summary>The standard normal upper tail Q(z) = P[N(0, 1) ≥ z], in log space so that it does not underflow.</summary>
internal static class NormalTail
{
    /// <summary>ln Q(z), with Q(z) = ½ erfc(z / √2); erfc by the Chebyshev fit of Numerical Recipes (erfcc, relative error &lt; 1.2e-7 everywhere).</summary>
    public static double LogUpperTail(double z)
    {
        double x = z / Math.Sqrt(2);
        if (x >= 0)
        {
            return Math.Log(0.5) + LogErfc(x);
        }

        // Q(z) = 1 − Q(−z)
        return Math.Log(1 - (0.5 * Math.Exp(LogErfc(-x))));
    }

    private static double LogErfc(double x)
    {
        double t = 1.0 / (1.0 + (0.5 * x));
        double poly = -x * x - 1.26551223 + (t * (1.00002368 + (t * (0.37409196 + (t * (0.09678418 + (t * (-0.18628806
            + (t * (0.27886807 + (t * (-1.13520398 + (t * (1.48851587 + (t * (-0.82215223 + (t * 0.17087277)))))))))))))))));
        return Math.Log(t) + poly;
    }
}
