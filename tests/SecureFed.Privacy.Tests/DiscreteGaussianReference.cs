namespace SecureFed.Privacy.Tests;

/// <summary>The exact discrete Gaussian pmf, computed independently of the sampler (direct summation).</summary>
internal sealed class DiscreteGaussianReference
{
    public DiscreteGaussianReference(double sigma)
    {
        Sigma = sigma;
        Radius = (int)Math.Ceiling((40 * sigma) + 20);
        double normaliser = 0;
        var weights = new double[(2 * Radius) + 1];
        for (int x = -Radius; x <= Radius; x++)
        {
            double w = Math.Exp(-(double)x * x / (2 * sigma * sigma));
            weights[x + Radius] = w;
            normaliser += w;
        }

        Pmf = weights.Select(w => w / normaliser).ToArray();
        Variance = Enumerable.Range(-Radius, (2 * Radius) + 1).Sum(x => (double)x * x * Probability(x));
        FourthMoment = Enumerable.Range(-Radius, (2 * Radius) + 1).Sum(x => Math.Pow(x, 4) * Probability(x));
    }

    public double Sigma { get; }

    public int Radius { get; }

    public double[] Pmf { get; }

    public double Variance { get; }

    public double FourthMoment { get; }

    public double Probability(long x) => Math.Abs(x) > Radius ? 0 : Pmf[x + Radius];

    /// <summary>P[|X| &gt;= k].</summary>
    public double TwoSidedTail(int k)
    {
        double p = 0;
        for (int x = k; x <= Radius; x++)
        {
            p += 2 * Probability(x);
        }

        return k == 0 ? 1 : p;
    }
}
