namespace SecureFed.Privacy;

/// <summary>The inverse of the accountant: the smallest noise multiplier that meets an epsilon target.</summary>
public static class NoiseCalibration
{
    private const double MaxNoiseMultiplier = 1e6;

    /// <summary>
    /// The noise multiplier sigma such that <paramref name="steps"/> steps of the subsampled Gaussian with rate
    /// <paramref name="sampleRate"/> spend at most <paramref name="targetEpsilon"/> at <paramref name="delta"/>.
    /// Bisection to a relative tolerance of 1e-4; the returned sigma is always on the safe side (its epsilon is
    /// &lt;= the target).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An argument is outside its domain.</exception>
    /// <exception cref="ArgumentException">The target cannot be reached with these orders and delta, whatever the noise.</exception>
    public static double NoiseMultiplierFor(
        double targetEpsilon,
        double delta,
        double sampleRate,
        long steps,
        IReadOnlyList<double>? orders = null,
        RdpConversion conversion = RdpConversion.Improved)
    {
        if (!double.IsFinite(targetEpsilon) || targetEpsilon <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(targetEpsilon), targetEpsilon, "The target epsilon must be finite and > 0.");
        }

        RdpAccountant.ValidateDelta(delta);
        RdpAccountant.ValidateSubsampledGaussian(sampleRate, 1.0, steps);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        var template = new RdpAccountant(orders);

        double EpsilonAt(double sigma)
        {
            RdpAccountant accountant = template.Clone();
            accountant.AddSubsampledGaussian(sampleRate, sigma, steps);
            return accountant.GetPrivacySpent(delta, conversion).Epsilon;
        }

        double hi = 1.0;
        while (EpsilonAt(hi) > targetEpsilon)
        {
            hi *= 2;
            if (hi > MaxNoiseMultiplier)
            {
                double floor = EpsilonAt(MaxNoiseMultiplier);
                throw new ArgumentException(
                    $"epsilon {targetEpsilon} at delta {delta} is unreachable with these RDP orders: even noise multiplier " +
                    $"{MaxNoiseMultiplier:G} gives epsilon {floor:G6}. Raise the target epsilon or delta, or take fewer steps.",
                    nameof(targetEpsilon));
            }
        }

        double lo = hi / 2;
        if (EpsilonAt(lo) <= targetEpsilon)
        {
            // hi == 1 and even smaller noise suffices: walk down.
            while (EpsilonAt(lo) <= targetEpsilon)
            {
                hi = lo;
                lo /= 2;
                if (lo < 1e-6)
                {
                    return hi;
                }
            }
        }

        while ((hi - lo) / hi > 1e-5)
        {
            double mid = 0.5 * (lo + hi);
            if (EpsilonAt(mid) > targetEpsilon)
            {
                lo = mid;
            }
            else
            {
                hi = mid;
            }
        }

        return hi;
    }
}
