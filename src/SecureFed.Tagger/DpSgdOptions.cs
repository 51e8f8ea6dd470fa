namespace SecureFed.Tagger;

/// <summary>
/// DP-SGD (Abadi et al. 2016): each step samples every training example independently with probability
/// <paramref name="SampleRate"/> (Poisson sampling), clips each example's gradient over ALL parameters to L2 norm
/// <paramref name="MaxGradNorm"/>, sums, adds N(0, (NoiseMultiplier * MaxGradNorm)^2) noise per coordinate and divides
/// by the expected batch size q * N. The privacy accountant needs <see cref="TrainResult.DpSteps"/> and q.
/// </summary>
/// <param name="NoiseMultiplier">sigma (noise std / clipping norm), &gt;= 0.</param>
/// <param name="MaxGradNorm">C, the per-example clipping norm, &gt; 0.</param>
/// <param name="SampleRate">q in (0, 1].</param>
public sealed record DpSgdOptions(double NoiseMultiplier, double MaxGradNorm, double SampleRate)
{
    /// <summary>
    /// Computes the clipped sum with one backward pass per example (the reference implementation) instead of one batched
    /// forward and backward pass. Same result to float rounding, several times slower; for benchmarks and tests.
    /// The character CNN always uses it.
    /// </summary>
    /// <value>The default value is false.</value>
    public bool PerExampleLoop { get; init; }

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(NoiseMultiplier, nameof(NoiseMultiplier));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxGradNorm, nameof(MaxGradNorm));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(SampleRate, nameof(SampleRate));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(SampleRate, 1.0, nameof(SampleRate));
    }
}
