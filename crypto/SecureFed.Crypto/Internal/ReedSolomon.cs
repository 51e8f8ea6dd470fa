namespace SecureFed.Crypto.Internal;

/// <summary>
/// Reed–Solomon codes over GF(2^61 - 1) as seen by Shamir sharing: the shares (x_i, y_i) of one chunk are a codeword
/// when one polynomial of degree below t passes through all of them. Parity check (generalized RS dual code) and
/// Berlekamp–Welch decoding.
/// </summary>
internal static class ReedSolomon
{
    /// <summary>
    /// The dual-code weights v_i = 1 / Π_{k≠i} (x_i − x_k). With them, y is a codeword of dimension t exactly when
    /// Σ_i v_i x_i^j y_i = 0 for j = 0 .. n − t − 1 (Σ_i v_i g(x_i) is the x^(n−1) coefficient of the interpolant of g).
    /// </summary>
    public static ulong[] DualWeights(ReadOnlySpan<ulong> xs)
    {
        int n = xs.Length;
        ulong[] weights = new ulong[n];
        for (int i = 0; i < n; i++)
        {
            ulong product = 1;
            for (int k = 0; k < n; k++)
            {
                if (k != i)
                {
                    product = MersenneField.Multiply(product, MersenneField.Subtract(xs[i], xs[k]));
                }
            }

            weights[i] = MersenneField.Inverse(product);
        }

        return weights;
    }

    /// <summary>True when one polynomial of degree below <paramref name="t"/> passes through every (x_i, y_i).</summary>
    public static bool IsCodeword(ReadOnlySpan<ulong> xs, ReadOnlySpan<ulong> ys, ReadOnlySpan<ulong> weights, int t)
    {
        int n = xs.Length;
        int checks = n - t;
        if (checks <= 0)
        {
            return true;
        }

        Span<ulong> powers = n <= 256 ? stackalloc ulong[n] : new ulong[n];
        for (int i = 0; i < n; i++)
        {
            powers[i] = MersenneField.Multiply(weights[i], ys[i]);
        }

        for (int j = 0; j < checks; j++)
        {
            ulong syndrome = 0;
            for (int i = 0; i < n; i++)
            {
                syndrome = MersenneField.Add(syndrome, powers[i]);
                powers[i] = MersenneField.Multiply(powers[i], xs[i]);
            }

            if (syndrome != 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Evaluates the polynomial with <paramref name="coefficients"/> (constant first) at <paramref name="x"/>.</summary>
    public static ulong Evaluate(ReadOnlySpan<ulong> coefficients, ulong x)
    {
        ulong y = 0;
        for (int k = coefficients.Length - 1; k >= 0; k--)
        {
            y = MersenneField.Add(MersenneField.Multiply(y, x), coefficients[k]);
        }

        return y;
    }

    /// <summary>
    /// Berlekamp–Welch: finds the polynomial P of degree below <paramref name="t"/> that agrees with all but at most
    /// <paramref name="maxErrors"/> of the points, given n ≥ t + 2·maxErrors points. Solves Q(x_i) = y_i·E(x_i) for a
    /// monic error locator E of degree maxErrors and Q of degree below t + maxErrors, then P = Q / E. Returns P's t
    /// coefficients, or null when no such polynomial exists (more errors than maxErrors).
    /// </summary>
    public static ulong[]? Decode(ReadOnlySpan<ulong> xs, ReadOnlySpan<ulong> ys, int t, int maxErrors)
    {
        int n = xs.Length;
        int e = maxErrors;
        if (e < 0 || n < t + (2 * e))
        {
            throw new ArgumentException($"Berlekamp–Welch with {n} points, t = {t} corrects at most {(n - t) / 2} errors; asked for {e}.");
        }

        // Unknowns: q_0 .. q_{t+e-1}, then e_0 .. e_{e-1} (E = x^e + Σ e_k x^k). Row i:
        //   Σ_j q_j x_i^j − y_i Σ_k e_k x_i^k = y_i x_i^e
        int qCount = t + e; // > e, so the loop below also reaches x_i^e for the right-hand side
        int unknowns = qCount + e;
        var matrix = new ulong[n, unknowns + 1];
        for (int i = 0; i < n; i++)
        {
            ulong power = 1;
            for (int j = 0; j < qCount; j++)
            {
                matrix[i, j] = power;
                if (j < e)
                {
                    matrix[i, qCount + j] = MersenneField.Subtract(0, MersenneField.Multiply(ys[i], power));
                }

                if (j == e)
                {
                    matrix[i, unknowns] = MersenneField.Multiply(ys[i], power);
                }

                power = MersenneField.Multiply(power, xs[i]);
            }
        }

        ulong[]? solution = Solve(matrix, n, unknowns);
        if (solution is null)
        {
            return null;
        }

        // P = Q / E by long division (E monic).
        ulong[] q = solution[..qCount];
        ulong[] locator = new ulong[e + 1];
        solution.AsSpan(qCount, e).CopyTo(locator);
        locator[e] = 1;
        ulong[] quotient = new ulong[t];
        for (int d = qCount - 1; d >= e; d--)
        {
            ulong c = q[d];
            quotient[d - e] = c;
            if (c == 0)
            {
                continue;
            }

            for (int k = 0; k <= e; k++)
            {
                q[d - e + k] = MersenneField.Subtract(q[d - e + k], MersenneField.Multiply(c, locator[k]));
            }
        }

        for (int k = 0; k < e; k++)
        {
            if (q[k] != 0)
            {
                return null; // E does not divide Q: too many errors
            }
        }

        int disagreements = 0;
        for (int i = 0; i < n; i++)
        {
            if (Evaluate(quotient, xs[i]) != ys[i])
            {
                disagreements++;
            }
        }

        return disagreements <= e ? quotient : null;
    }

    /// <summary>Gauss–Jordan elimination on an augmented rows × (cols + 1) system; any solution (free variables 0) or null.</summary>
    private static ulong[]? Solve(ulong[,] a, int rows, int cols)
    {
        int[] pivotColumnOfRow = new int[rows];
        int rank = 0;
        for (int col = 0; col < cols && rank < rows; col++)
        {
            int pivot = -1;
            for (int r = rank; r < rows; r++)
            {
                if (a[r, col] != 0)
                {
                    pivot = r;
                    break;
                }
            }

            if (pivot < 0)
            {
                continue;
            }

            if (pivot != rank)
            {
                for (int c = col; c <= cols; c++)
                {
                    (a[pivot, c], a[rank, c]) = (a[rank, c], a[pivot, c]);
                }
            }

            ulong inverse = MersenneField.Inverse(a[rank, col]);
            for (int c = col; c <= cols; c++)
            {
                a[rank, c] = MersenneField.Multiply(a[rank, c], inverse);
            }

            for (int r = 0; r < rows; r++)
            {
                ulong factor = a[r, col];
                if (r == rank || factor == 0)
                {
                    continue;
                }

                for (int c = col; c <= cols; c++)
                {
                    a[r, c] = MersenneField.Subtract(a[r, c], MersenneField.Multiply(factor, a[rank, c]));
                }
            }

            pivotColumnOfRow[rank] = col;
            rank++;
        }

        for (int r = rank; r < rows; r++)
        {
            if (a[r, cols] != 0)
            {
                return null; // inconsistent
            }
        }

        ulong[] x = new ulong[cols];
        for (int r = 0; r < rank; r++)
        {
            x[pivotColumnOfRow[r]] = a[r, cols];
        }

        return x;
    }
}
