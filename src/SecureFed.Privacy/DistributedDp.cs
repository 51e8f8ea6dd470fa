namespace SecureFed.Privacy;

/// <summary>
/// Site-level distributed DP in the integer domain: the distributed discrete Gaussian of Kairouz, Liu &amp; Steinke,
/// "The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation", ICML 2021
/// (arXiv:2102.06387), as used by TensorFlow Federated's <c>DistributedDpSumFactory</c>. Each site clips its update to
/// L2 norm <c>C</c>, scales by <c>s</c>, rounds with conditional randomized rounding, and adds discrete Gaussian noise
/// with sigma chosen so that the SUM of any <c>t</c> surviving sites carries the target noise.
/// </summary>
public static class DistributedDp
{
    /// <summary>The default conditional-rounding beta, exp(-1/2) (TFF <c>DEFAULT_BETA</c>).</summary>
    public static readonly double DefaultBeta = Math.Exp(-0.5);

    /// <summary>Per-site sigmas are rounded up to a multiple of 1 / SigmaGranularity.</summary>
    public const double SigmaGranularity = 256.0;

    /// <summary>The number of per-site standard deviations (times sqrt(sites)) covered by <see cref="NoiseHeadroom"/>.</summary>
    public const double HeadroomStandardDeviations = 20.0;

    /// <summary>
    /// Plans the per-site noise. The L2 sensitivity used is the rounded bound of Kairouz et al. 2021 (Theorem 1,
    /// Eq. 2; Proposition 22 for the min): with <c>c = l2Clip * scale</c>,
    /// <c>Delta_2 = min(c + sqrt(d), sqrt(c^2 + d/4 + sqrt(2 ln(1/beta)) * (c + sqrt(d)/2)))</c>,
    /// which conditional randomized rounding guarantees (re-round until the norm is below it). Then
    /// <c>sigma_site = targetNoiseMultiplier * Delta_2 / sqrt(minSurvivors)</c> (rounded up to a multiple of 2^-8), so the sum of any
    /// <c>t = minSurvivors</c> sites has standard deviation &gt;= targetNoiseMultiplier * Delta_2 &gt;=
    /// targetNoiseMultiplier * l2Clip * scale.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An argument is outside its domain.</exception>
    /// <exception cref="ArgumentException">The resulting per-site sigma is below 1/2 (the analysis needs sigma &gt;= 1/2): increase the scale.</exception>
    public static DistributedDpPlan Plan(
        double l2Clip, double scale, int dimension, int cohortSize, int minSurvivors, double targetNoiseMultiplier)
    {
        RequirePositiveFinite(l2Clip, nameof(l2Clip));
        RequirePositiveFinite(scale, nameof(scale));
        RequirePositiveFinite(targetNoiseMultiplier, nameof(targetNoiseMultiplier));
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(cohortSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(minSurvivors, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minSurvivors, cohortSize);

        double c = l2Clip * scale;
        double beta = DefaultBeta;
        double l2 = RoundedL2NormBound(c, dimension, beta);
        double l1 = l2 * Math.Min(Math.Sqrt(dimension), l2);
        // Rounded UP to a multiple of 2^-8: more noise than required by < 1/256 (absolute), and sigma^2 becomes a
        // short dyadic rational, which keeps the exact sampler on its allocation-free 128-bit path.
        double sigmaSite = Math.Ceiling(targetNoiseMultiplier * l2 / Math.Sqrt(minSurvivors) * SigmaGranularity) / SigmaGranularity;
        if (sigmaSite < 0.5)
        {
            throw new ArgumentException(
                $"The per-site discrete Gaussian sigma would be {sigmaSite:G4} < 0.5 (quantized units); the distributed " +
                $"discrete Gaussian analysis needs sigma >= 0.5. Increase the scale (now {scale:G}) or the noise multiplier.",
                nameof(scale));
        }

        return new DistributedDpPlan(
            l2Clip, scale, dimension, cohortSize, minSurvivors, targetNoiseMultiplier, beta, c, l2, l1, sigmaSite);
    }

    /// <summary>
    /// The L2 norm bound after (conditional) randomized rounding of a vector of L2 norm <paramref name="scaledNorm"/>
    /// in <paramref name="dimension"/> coordinates (Kairouz et al. 2021, Theorem 1 / Eq. 2 with Proposition 22):
    /// <c>min(c + sqrt(d), sqrt(c^2 + d/4 + sqrt(2 ln(1/beta)) (c + sqrt(d)/2)))</c>; beta = 0 gives <c>c + sqrt(d)</c>.
    /// </summary>
    public static double RoundedL2NormBound(double scaledNorm, int dimension, double beta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        if (double.IsNaN(beta) || beta < 0 || beta >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be in [0, 1).");
        }

        double sqrtD = Math.Sqrt(dimension);
        double bound1 = scaledNorm + sqrtD;
        if (beta == 0)
        {
            return bound1;
        }

        double squared = (scaledNorm * scaledNorm) + (0.25 * dimension)
                         + (Math.Sqrt(2.0 * Math.Log(1.0 / beta)) * (scaledNorm + (0.5 * sqrtD)));
        return Math.Min(bound1, Math.Sqrt(squared));
    }

    /// <summary>
    /// Adds independent discrete Gaussian noise of parameter <paramref name="sigmaSite"/> to every word, modulo
    /// <c>2^bitWidth</c> (two's complement wrap-around, as secure aggregation sums mod 2^b).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">bitWidth outside 1..32 or a word already outside [0, 2^b).</exception>
    public static void AddNoise(Span<uint> words, int bitWidth, double sigmaSite, DiscreteGaussianSampler sampler)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentOutOfRangeException.ThrowIfLessThan(bitWidth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bitWidth, 32);
        uint mask = bitWidth == 32 ? uint.MaxValue : (1u << bitWidth) - 1;
        for (int i = 0; i < words.Length; i++)
        {
            if ((words[i] & ~mask) != 0)
            {
                throw new ArgumentOutOfRangeException(nameof(words), $"Word {i} is {words[i]}, outside [0, 2^{bitWidth}).");
            }
        }

        Span<long> noise = stackalloc long[256];
        try
        {
            for (int offset = 0; offset < words.Length; offset += noise.Length)
            {
                Span<long> chunk = noise[..Math.Min(noise.Length, words.Length - offset)];
                sampler.Sample(sigmaSite, chunk);
                for (int i = 0; i < chunk.Length; i++)
                {
                    words[offset + i] = (uint)((ulong)((long)words[offset + i] + chunk[i]) & mask);
                }
            }
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(noise));
            sampler.ClearBufferedRandomness();
        }
    }

    /// <summary>
    /// The zCDP rho of one aggregation round in which <paramref name="survivors"/> sites each added
    /// <c>N_Z(0, sigma_site^2)</c> (Kairouz et al. 2021, Theorem 1 with Proposition 14): with
    /// <c>tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k/(k+1))</c>, <c>l2 = Delta_2 / (sqrt(n) sigma)</c> and
    /// <c>l1 = Delta_1 / (sqrt(n) sigma)</c>, the sum is <c>rho</c>-zCDP for
    /// <c>rho = 1/2 min(l2^2 + 2 l1 tau + tau^2 d, (l2 + sqrt(d) tau)^2)</c>.
    /// Fewer survivors than planned give a larger rho (less noise): account what actually happened.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">survivors outside 1..CohortSize.</exception>
    /// <exception cref="ArgumentException">The plan's sigma_site is below 1/2.</exception>
    public static double RhoPerRound(DistributedDpPlan plan, int survivors)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentOutOfRangeException.ThrowIfLessThan(survivors, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(survivors, plan.CohortSize);
        double sigma = plan.SigmaSite;
        if (!(sigma >= 0.5) || !double.IsFinite(sigma))
        {
            throw new ArgumentException($"The plan's sigma_site {sigma} is below 0.5; Kairouz et al.'s bound does not apply.", nameof(plan));
        }
        double tau = 0;
        for (int k = 1; k < survivors; k++)
        {
            tau += Math.Exp(-2 * Math.PI * Math.PI * sigma * sigma * k / (k + 1.0));
        }

        tau *= 10;
        double sqrtNSigma = Math.Sqrt(survivors) * sigma;
        double l2 = plan.RoundedL2Sensitivity / sqrtNSigma;
        double l1 = plan.RoundedL1Sensitivity / sqrtNSigma;
        double d = plan.Dimension;
        double a = (l2 * l2) + (2 * l1 * tau) + (tau * tau * d);
        double b = l2 + (Math.Sqrt(d) * tau);
        return 0.5 * Math.Min(a, b * b);
    }

    /// <summary>
    /// A per-coordinate bound on the summed noise of <paramref name="sites"/> sites for bit-width planning:
    /// <c>ceil(20 sigma_site sqrt(sites))</c> (the discrete Gaussian is sub-Gaussian, so exceeding it has
    /// probability below 2 exp(-200) per coordinate).
    /// </summary>
    public static long NoiseHeadroom(DistributedDpPlan plan, int sites)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentOutOfRangeException.ThrowIfLessThan(sites, 1);
        return (long)Math.Ceiling(HeadroomStandardDeviations * plan.SigmaSite * Math.Sqrt(sites));
    }

    private static void RequirePositiveFinite(double value, string name)
    {
        if (!double.IsFinite(value) || value <= 0)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be finite and > 0.");
        }
    }
}
