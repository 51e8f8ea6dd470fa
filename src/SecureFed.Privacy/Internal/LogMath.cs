namespace SecureFed.Privacy.Internal;

/// <summary>Log-space arithmetic and the complementary error function needed by the RDP accountant.</summary>
internal static class LogMath
{
    private static readonly double HalfLogPi = 0.5 * Math.Log(Math.PI);

    /// <summary>log(exp(x) + exp(y)) without overflow.</summary>
    public static double LogAdd(double logX, double logY)
    {
        double a = Math.Min(logX, logY);
        double b = Math.Max(logX, logY);
        if (double.IsNegativeInfinity(a))
        {
            return b;
        }

        return LogOnePlus(Math.Exp(a - b)) + b;
    }

    /// <summary>log(exp(x) - exp(y)) for x &gt;= y.</summary>
    public static double LogSub(double logX, double logY)
    {
        if (logX < logY)
        {
            throw new InvalidOperationException(
                $"Log-space subtraction would go negative (log x = {logX}, log y = {logY}); the RDP series did not converge.");
        }

        if (double.IsNegativeInfinity(logY))
        {
            return logX;
        }

        if (logX == logY)
        {
            return double.NegativeInfinity;
        }

        double diff = logX - logY;
        if (diff > 700)
        {
            return logX;
        }

        return Math.Log(ExpMinusOne(diff)) + logY;
    }

    /// <summary>log(1 + x), accurate for small x.</summary>
    public static double LogOnePlus(double x)
    {
        if (Math.Abs(x) > 1e-4)
        {
            return Math.Log(1.0 + x);
        }

        // Taylor series; |x| <= 1e-4 so four terms reach double precision.
        return x * (1.0 - (x * ((1.0 / 2.0) - (x * ((1.0 / 3.0) - (x / 4.0))))));
    }

    /// <summary>exp(x) - 1, accurate for small x.</summary>
    public static double ExpMinusOne(double x)
    {
        if (Math.Abs(x) > 1e-5)
        {
            return Math.Exp(x) - 1.0;
        }

        return x * (1.0 + (x * (0.5 + (x / 6.0))));
    }

    /// <summary>
    /// log(erfc(x)) with full relative accuracy for large positive x (where erfc underflows):
    /// the positive-term series erf(x) = 2/sqrt(pi) e^{-x^2} sum 2^n x^{2n+1} / (2n+1)!! below 2, and the
    /// Laplace continued fraction (Abramowitz &amp; Stegun 7.1.14) from 2 upwards.
    /// </summary>
    public static double LogErfc(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        if (x < 0)
        {
            return Math.Log(2.0 - Erfc(-x));
        }

        if (x < 2.0)
        {
            return Math.Log(1.0 - Erf(x));
        }

        return -(x * x) - HalfLogPi - Math.Log(ContinuedFraction(x));
    }

    /// <summary>erfc(x) for any real x.</summary>
    public static double Erfc(double x)
    {
        if (x < 0)
        {
            return 2.0 - Erfc(-x);
        }

        if (x < 2.0)
        {
            return 1.0 - Erf(x);
        }

        return Math.Exp(LogErfc(x));
    }

    /// <summary>erf(x) for 0 &lt;= x &lt; 2 via a series of positive terms (no cancellation).</summary>
    private static double Erf(double x)
    {
        double twoX2 = 2.0 * x * x;
        double term = x;
        double sum = x;
        for (int n = 1; n < 500; n++)
        {
            term *= twoX2 / ((2 * n) + 1);
            sum += term;
            if (term < sum * 1e-17)
            {
                break;
            }
        }

        return 2.0 / Math.Sqrt(Math.PI) * Math.Exp(-x * x) * sum;
    }

    /// <summary>x + (1/2)/(x + (2/2)/(x + (3/2)/(x + ...))) by the modified Lentz method.</summary>
    private static double ContinuedFraction(double x)
    {
        const double tiny = 1e-300;
        double f = x;
        double c = f;
        double d = 0;
        for (int j = 1; j < 5000; j++)
        {
            double a = j / 2.0;
            d = x + (a * d);
            if (Math.Abs(d) < tiny)
            {
                d = tiny;
            }

            c = x + (a / c);
            if (Math.Abs(c) < tiny)
            {
                c = tiny;
            }

            d = 1.0 / d;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1.0) < 1e-16)
            {
                break;
            }
        }

        return f;
    }
}
