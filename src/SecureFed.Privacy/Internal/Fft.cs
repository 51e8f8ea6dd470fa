namespace SecureFed.Privacy.Internal;

/// <summary>An in-place iterative radix-2 complex FFT on separate real and imaginary arrays (length a power of two).</summary>
internal static class Fft
{
    /// <summary>Transforms (<paramref name="re"/>, <paramref name="im"/>) in place: forward (e^{-2πi jk/n}) or inverse (scaled by 1/n).</summary>
    public static void Transform(double[] re, double[] im, bool inverse)
    {
        int n = re.Length;
        if (n != im.Length || n == 0 || (n & (n - 1)) != 0)
        {
            throw new ArgumentException($"the FFT needs two arrays of the same power-of-two length, not {re.Length} and {im.Length}");
        }

        for (int i = 1, j = 0; i < n; i++)
        {
            int bit = n >> 1;
            for (; (j & bit) != 0; bit >>= 1)
            {
                j ^= bit;
            }

            j ^= bit;
            if (i < j)
            {
                (re[i], re[j]) = (re[j], re[i]);
                (im[i], im[j]) = (im[j], im[i]);
            }
        }

        double sign = inverse ? 1 : -1;
        for (int length = 2; length <= n; length <<= 1)
        {
            int half = length >> 1;
            // Twiddles of this stage computed directly (not by repeated multiplication) to keep the error at rounding level.
            var wr = new double[half];
            var wi = new double[half];
            for (int k = 0; k < half; k++)
            {
                double angle = sign * 2 * Math.PI * k / length;
                wr[k] = Math.Cos(angle);
                wi[k] = Math.Sin(angle);
            }

            for (int start = 0; start < n; start += length)
            {
                for (int k = 0; k < half; k++)
                {
                    int a = start + k;
                    int b = a + half;
                    double tr = (re[b] * wr[k]) - (im[b] * wi[k]);
                    double ti = (re[b] * wi[k]) + (im[b] * wr[k]);
                    re[b] = re[a] - tr;
                    im[b] = im[a] - ti;
                    re[a] += tr;
                    im[a] += ti;
                }
            }
        }

        if (inverse)
        {
            double scale = 1.0 / n;
            for (int i = 0; i < n; i++)
            {
                re[i] *= scale;
                im[i] *= scale;
            }
        }
    }
}
