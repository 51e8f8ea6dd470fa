namespace SecureFed.Privacy;

/// <summary>
/// The per-site noise plan of the distributed discrete Gaussian mechanism (Kairouz, Liu &amp; Steinke 2021). All
/// sensitivities and standard deviations are in quantized units (after multiplying by <see cref="Scale"/>).
/// </summary>
/// <param name="L2Clip">The L2 norm every site's update is clipped to, in model units.</param>
/// <param name="Scale">The quantization scale (quantized value = round(value * scale)).</param>
/// <param name="Dimension">The number of coordinates d.</param>
/// <param name="CohortSize">The number of sites invited to the round (n).</param>
/// <param name="MinSurvivors">The secure-aggregation threshold t: the fewest sites whose sum can be revealed.</param>
/// <param name="TargetNoiseMultiplier">The noise multiplier the sum of any t sites must carry, relative to <see cref="RoundedL2Sensitivity"/>.</param>
/// <param name="Beta">The conditional randomized rounding parameter beta (exp(-1/2), as in TFF's DistributedDpSumFactory).</param>
/// <param name="ScaledClip">c = L2Clip * Scale.</param>
/// <param name="RoundedL2Sensitivity">Delta_2: the L2 bound after conditional randomized rounding (Kairouz et al. 2021, Theorem 1 / Eq. 2).</param>
/// <param name="RoundedL1Sensitivity">Delta_1 = Delta_2 * min(sqrt(d), Delta_2) (integer coordinates).</param>
/// <param name="SigmaSite">The discrete Gaussian sigma each site adds: TargetNoiseMultiplier * Delta_2 / sqrt(t), rounded up to a multiple of 2^-8.</param>
public sealed record DistributedDpPlan(
    double L2Clip,
    double Scale,
    int Dimension,
    int CohortSize,
    int MinSurvivors,
    double TargetNoiseMultiplier,
    double Beta,
    double ScaledClip,
    double RoundedL2Sensitivity,
    double RoundedL1Sensitivity,
    double SigmaSite);
