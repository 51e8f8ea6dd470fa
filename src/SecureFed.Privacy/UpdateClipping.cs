namespace SecureFed.Privacy;

/// <summary>L2 clipping of a whole model update (site-level DP, McMahan et al. 2018).</summary>
public static class UpdateClipping
{
    /// <summary>
    /// Scales <paramref name="update"/> in place by <c>min(1, bound / ||update||_2)</c> and returns the norm before
    /// clipping. The norm is accumulated in double; after scaling the float vector is re-measured and, if float
    /// rounding left it above <paramref name="bound"/>, shrunk once more, so the result is guaranteed to satisfy
    /// <c>||update||_2 &lt;= bound</c> (the sensitivity the noise is calibrated to).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">bound not finite and &gt; 0.</exception>
    /// <exception cref="ArgumentException">The update contains NaN or an infinity (the message names the index).</exception>
    public static double ClipL2(Span<float> update, double bound)
    {
        if (!double.IsFinite(bound) || bound <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(bound), bound, "The L2 clipping bound must be finite and > 0.");
        }

        double norm = Norm(update, validate: true);
        if (norm <= bound)
        {
            return norm;
        }

        Scale(update, bound / norm);
        double after = Norm(update, validate: false);
        if (after > bound)
        {
            Scale(update, bound / after * (1 - 1e-6));
        }

        return norm;
    }

    /// <summary>The L2 norm of <paramref name="vector"/>, accumulated in double.</summary>
    /// <exception cref="ArgumentException">The vector contains NaN or an infinity.</exception>
    public static double L2Norm(ReadOnlySpan<float> vector) => Norm(vector, validate: true);

    private static double Norm(ReadOnlySpan<float> vector, bool validate)
    {
        double sum = 0;
        for (int i = 0; i < vector.Length; i++)
        {
            float v = vector[i];
            if (validate && !float.IsFinite(v))
            {
                throw new ArgumentException(
                    $"The update has a non-finite value ({v}) at index {i}; refusing to clip (a NaN/Inf update would break the privacy guarantee).",
                    nameof(vector));
            }

            sum += (double)v * v;
        }

        return Math.Sqrt(sum);
    }

    private static void Scale(Span<float> vector, double factor)
    {
        for (int i = 0; i < vector.Length; i++)
        {
            vector[i] = (float)(vector[i] * factor);
        }
    }
}
