using SecureFed.Tagger.Internal;

namespace SecureFed.Tagger.Tests;

/// <summary>
/// The Jacobi eigen-solver behind the encoder's principal directions (<see cref="SymmetricEigen"/>): a textbook example,
/// reconstruction and orthonormality on random symmetric matrices, repeated eigenvalues, and bad input.
/// </summary>
public sealed class SymmetricEigenTests
{
    [Fact]
    public void TwoByTwo_MatchesTheClosedForm()
    {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, eigenvectors (1, 1)/√2 and (1, −1)/√2.
        double[] vectors = SymmetricEigen.Decompose([2, 1, 1, 2], 2, out double[] values);

        Assert.Equal(3, values[0], 12);
        Assert.Equal(1, values[1], 12);
        Assert.Equal(1 / Math.Sqrt(2), Math.Abs(vectors[0]), 12);
        Assert.Equal(vectors[0], vectors[1], 12);
        Assert.Equal(vectors[2], -vectors[3], 12);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 2)]
    [InlineData(40, 3)]
    [InlineData(97, 4)]
    public void RandomSymmetric_ReconstructsAndIsOrthonormal_ValuesDecreasing(int n, int seed)
    {
        var random = new Random(seed);
        var a = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = i; j < n; j++)
            {
                a[(i * n) + j] = a[(j * n) + i] = (random.NextDouble() * 2) - 1;
            }
        }

        double[] v = SymmetricEigen.Decompose(a, n, out double[] values);

        for (int k = 1; k < n; k++)
        {
            Assert.True(values[k - 1] >= values[k], $"eigenvalue {k - 1} ({values[k - 1]}) is below eigenvalue {k} ({values[k]})");
        }

        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double dot = 0;
                double reconstructed = 0;
                for (int d = 0; d < n; d++)
                {
                    dot += v[(i * n) + d] * v[(j * n) + d];
                    reconstructed += v[(d * n) + i] * values[d] * v[(d * n) + j];
                }

                Assert.Equal(i == j ? 1 : 0, dot, 10);
                Assert.Equal(a[(i * n) + j], reconstructed, 10);
            }
        }
    }

    [Fact]
    public void RepeatedEigenvalues_AndADiagonalMatrix_AreExact()
    {
        double[] v = SymmetricEigen.Decompose([1, 0, 0, 0, 5, 0, 0, 0, 1], 3, out double[] values);

        Assert.Equal([5.0, 1.0, 1.0], values);
        Assert.Equal([0.0, 1.0, 0.0], v[..3]);
    }

    [Fact]
    public void WrongSizeOrNotFinite_ArgumentErrorSayingWhat()
    {
        Assert.Contains("not 3 × 3", Assert.Throws<ArgumentException>(() => SymmetricEigen.Decompose(new double[8], 3, out _)).Message);
        Assert.Contains("not finite", Assert.Throws<ArgumentException>(() => SymmetricEigen.Decompose([1, double.NaN, double.NaN, 1], 2, out _)).Message);
    }
}
