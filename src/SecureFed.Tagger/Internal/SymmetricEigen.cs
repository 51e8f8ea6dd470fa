namespace SecureFed.Tagger.Internal;

/// <summary>
/// Eigen-decomposition of a real symmetric matrix by the cyclic Jacobi method (Golub and Van Loan, Matrix Computations,
/// §8.5): plain managed doubles, so the same input gives the same bits on every machine.
/// </summary>
internal static class SymmetricEigen
{
    private const int MaxSweeps = 100;

    /// <summary>Decomposes the symmetric <paramref name="n"/> × <paramref name="n"/> matrix <paramref name="matrix"/> (row-major, not changed).</summary>
    /// <param name="matrix">The matrix; only symmetric input gives a meaningful result.</param>
    /// <param name="n">Its order.</param>
    /// <param name="eigenvalues">The eigenvalues in decreasing order.</param>
    /// <returns>The unit eigenvectors, one a row ([n × n] row-major), in the order of <paramref name="eigenvalues"/>.</returns>
    /// <exception cref="ArgumentException">The matrix is not n × n or holds a value that is not finite.</exception>
    public static double[] Decompose(ReadOnlySpan<double> matrix, int n, out double[] eigenvalues)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(n);
        if (matrix.Length != (long)n * n)
        {
            throw new ArgumentException($"the matrix has {matrix.Length} values, not {n} × {n}", nameof(matrix));
        }

        foreach (double v in matrix)
        {
            if (!double.IsFinite(v))
            {
                throw new ArgumentException("the matrix holds a value that is not finite", nameof(matrix));
            }
        }

        double[] a = matrix.ToArray();
        var v2 = new double[n * n]; // columns are the eigenvectors as they converge
        for (int i = 0; i < n; i++)
        {
            v2[(i * n) + i] = 1;
        }

        double total = 0;
        foreach (double x in a)
        {
            total += x * x;
        }

        for (int sweep = 0; sweep < MaxSweeps; sweep++)
        {
            double off = 0;
            for (int p = 0; p < n; p++)
            {
                for (int q = p + 1; q < n; q++)
                {
                    off += a[(p * n) + q] * a[(p * n) + q];
                }
            }

            if (off <= 1e-30 * total)
            {
                break;
            }

            for (int p = 0; p < n - 1; p++)
            {
                for (int q = p + 1; q < n; q++)
                {
                    Rotate(a, v2, n, p, q);
                }
            }
        }

        int[] order = [.. Enumerable.Range(0, n).OrderByDescending(i => a[(i * n) + i]).ThenBy(i => i)];
        eigenvalues = [.. order.Select(i => a[(i * n) + i])];
        var vectors = new double[n * n];
        for (int k = 0; k < n; k++)
        {
            for (int d = 0; d < n; d++)
            {
                vectors[(k * n) + d] = v2[(d * n) + order[k]];
            }
        }

        return vectors;
    }

    /// <summary>One Jacobi rotation zeroing a[p, q] (a symmetric, both triangles kept).</summary>
    private static void Rotate(double[] a, double[] v, int n, int p, int q)
    {
        double apq = a[(p * n) + q];
        if (apq == 0)
        {
            return;
        }

        double app = a[(p * n) + p];
        double aqq = a[(q * n) + q];
        double theta = (aqq - app) / (2 * apq);
        double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt((theta * theta) + 1));
        if (theta == 0)
        {
            t = 1;
        }

        double c = 1 / Math.Sqrt((t * t) + 1);
        double s = t * c;
        for (int k = 0; k < n; k++)
        {
            double akp = a[(k * n) + p];
            double akq = a[(k * n) + q];
            a[(k * n) + p] = (c * akp) - (s * akq);
            a[(k * n) + q] = (s * akp) + (c * akq);
        }

        for (int k = 0; k < n; k++)
        {
            double apk = a[(p * n) + k];
            double aqk = a[(q * n) + k];
            a[(p * n) + k] = (c * apk) - (s * aqk);
            a[(q * n) + k] = (s * apk) + (c * aqk);
        }

        for (int k = 0; k < n; k++)
        {
            double vkp = v[(k * n) + p];
            double vkq = v[(k * n) + q];
            v[(k * n) + p] = (c * vkp) - (s * vkq);
            v[(k * n) + q] = (s * vkp) + (c * vkq);
        }
    }
}
