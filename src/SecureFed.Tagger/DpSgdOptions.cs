using SecureFed.Privacy;

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

    /// <summary>
    /// Keeps the embedding tables (<c>word_emb</c>, <c>shape_emb</c>, <c>ngram_emb</c>, <c>char_emb</c>) fixed during
    /// DP-SGD: they get no gradient, no noise and no update, and each example's gradient is clipped over the other
    /// parameters only. The hashed tables are most of the tiny model's coordinates but each sentence touches few of
    /// their rows, so the Gaussian noise added to every coordinate drowns their signal; with them frozen (e.g. as a
    /// public warm start left them) the noise goes into the encoder and head only.
    /// </summary>
    /// <value>The default value is false.</value>
    public bool FreezeEmbeddings { get; init; }

    /// <summary>
    /// Computes the per-example gradients of DP-SGD without dropout and word dropout (the network in evaluation mode):
    /// the Gaussian noise already regularises, and dropout's extra variance in each example's gradient is signal the
    /// clipping and the noise cannot tell apart. No effect on ordinary training or on the privacy guarantee.
    /// </summary>
    /// <value>The default value is false.</value>
    public bool NoDropout { get; init; }

    /// <summary>
    /// Optional fixed diagonal preconditioner A, one positive factor per model parameter in <see cref="TaggerModel.Flatten"/>
    /// order (null = none): each example's gradient g is replaced by A ⊙ g before it is clipped, so the clipping and the
    /// noise act in the preconditioned space and plain SGD on the result behaves like an adaptive optimiser whose
    /// second moments come from elsewhere (AdaDPS, Li et al., "Private Adaptive Optimization with Side Information",
    /// ICML 2022). A must come from public side information only (<see cref="TaggerPreconditioner.FromPublicData"/>);
    /// it is then a fixed part of the mechanism and costs no privacy.
    /// </summary>
    /// <value>The default value is null.</value>
    public IReadOnlyList<float>? Preconditioner { get; init; }

    /// <summary>
    /// Applies <see cref="Preconditioner"/> to the noisy averaged gradient instead of to each example's gradient: the
    /// examples are clipped and the noise added as in plain DP-SGD, and the privatised gradient is then scaled per
    /// coordinate (post-processing, like an Adam whose second moments are fixed from public data).
    /// </summary>
    /// <value>The default value is false (AdaDPS: precondition before clipping).</value>
    public bool PreconditionAfterNoise { get; init; }

    /// <summary>
    /// Splits <see cref="Preconditioner"/> A between the two places it can act: each example's gradient is scaled by
    /// A^α before clipping and the noisy averaged gradient by A^(1−α), so the signal's step is A ⊙ g in either case while
    /// the noise's step is A^(1−α) ⊙ n. α = 1 is AdaDPS (the noise is isotropic in the parameters, so tensors with small
    /// factors get mostly noise); α = 0 is <see cref="PreconditionAfterNoise"/>; values between spread the clipping
    /// budget and the noise between the two. Ignored (0) when <see cref="PreconditionAfterNoise"/> is set.
    /// </summary>
    /// <value>The default value is 1 (precondition before clipping).</value>
    public double PreconditionSplit { get; init; } = 1;

    /// <summary>The exponent of <see cref="Preconditioner"/> applied before clipping: 0 with <see cref="PreconditionAfterNoise"/>, else <see cref="PreconditionSplit"/>.</summary>
    public double PreconditionBeforeClipExponent => PreconditionAfterNoise ? 0 : PreconditionSplit;

    /// <summary>
    /// Optional public gradient subspace (projected DP-SGD, <see cref="TaggerGradientSubspace"/>): each example's gradient
    /// (after the preconditioner's part before clipping) is replaced by its k coordinates in the subspace, clipped there
    /// to <see cref="MaxGradNorm"/>, summed, and the noise is drawn in k dimensions; the step is the sum mapped back
    /// into the parameters. Same sensitivity, same ε; the noise's norm shrinks by √(k / P). Null = plain DP-SGD.
    /// </summary>
    /// <value>The default value is null.</value>
    public TaggerGradientSubspace? Subspace { get; init; }

    /// <summary>
    /// Draws the Poisson sampling, word dropout, dropout masks and Gaussian noise from <see cref="TrainOptions.Seed"/>
    /// (the same seed gives the same model). The privacy proof assumes all of them are secret: anyone who knows the seed
    /// can recompute the noise and subtract it. For experiments and tests only, never for an agent's real training.
    /// </summary>
    /// <value>The default value is false: every draw comes from the operating system's CSPRNG (torch's generator is
    /// seeded with 64 fresh bits per training call).</value>
    public bool ReproducibleRandomness { get; init; }

    /// <summary>The most DP-SGD steps a site may plan for one round (<see cref="DpSgdSteps.MaxPerRound"/>).</summary>
    public const int MaxStepsPerRound = DpSgdSteps.MaxPerRound;

    /// <summary>DP-SGD steps per local epoch at sample rate <paramref name="sampleRate"/> (<see cref="DpSgdSteps.PerEpoch"/>).</summary>
    /// <param name="sampleRate">q in (0, 1].</param>
    /// <returns>round(1/q).</returns>
    public static double StepsPerEpoch(double sampleRate) => DpSgdSteps.PerEpoch(sampleRate);

    /// <summary>
    /// The DP-SGD steps one round's training takes (what the trainer runs, and so what a site accounts): local epochs ×
    /// round(1/q), at most <paramref name="stepsCap"/> when that is positive. 2 epochs at q 0.1 are 20 steps; 7 at q 0.3
    /// are 21, capped at 20 by the product's announcement.
    /// </summary>
    /// <param name="localEpochs">Local epochs per round.</param>
    /// <param name="sampleRate">q in (0, 1].</param>
    /// <param name="stepsCap">Cap on the steps per round (0 = none).</param>
    /// <returns>The steps.</returns>
    public static long StepsPerRound(int localEpochs, double sampleRate, int stepsCap = 0)
    {
        // Never fewer than the trainer takes (a site accounts these): an absurd product saturates instead of wrapping.
        double steps = Math.Max(0, localEpochs) * StepsPerEpoch(sampleRate);
        long whole = steps >= long.MaxValue ? long.MaxValue : (long)steps;
        return stepsCap > 0 ? Math.Min(whole, stepsCap) : whole;
    }

    /// <summary>
    /// The fewest local epochs whose <see cref="StepsPerRound"/> reach <paramref name="steps"/>: ceil(steps / round(1/q)),
    /// what a planner announces with <paramref name="steps"/> as the cap (20 steps at q 0.3: 7 epochs).
    /// </summary>
    /// <param name="steps">DP-SGD steps per round.</param>
    /// <param name="sampleRate">q in (0, 1].</param>
    /// <returns>The local epochs.</returns>
    public static int EpochsFor(int steps, double sampleRate) => (int)Math.Ceiling(steps / StepsPerEpoch(sampleRate));

    /// <summary>
    /// Why a DP-SGD plan of <paramref name="localEpochs"/> epochs at sample rate <paramref name="sampleRate"/> is
    /// implausible, or null when it is not (<see cref="DpSgdSteps.Problem"/>, the rule the aggregator and the agents apply
    /// to a round's settings). The planners (the demo's options, the experiment's) check it before anything runs.
    /// </summary>
    /// <param name="sampleRate">q in (0, 1].</param>
    /// <param name="localEpochs">Local epochs per round.</param>
    /// <param name="stepsCap">Cap on the steps per round (0 = none); the batches of a whole epoch are sampled all the same.</param>
    /// <returns>A message naming q, the steps it gives and the limit; or null.</returns>
    public static string? StepsProblem(double sampleRate, int localEpochs, int stepsCap = 0) => DpSgdSteps.Problem(sampleRate, localEpochs, stepsCap);

    /// <summary>Whether DP-SGD trains the parameter named <paramref name="name"/> (see <see cref="FreezeEmbeddings"/>).</summary>
    /// <param name="name">A name from the model's parameter list, e.g. <c>encoder.weight_ih_l0</c>.</param>
    /// <returns>False for an embedding table when <see cref="FreezeEmbeddings"/> is set, otherwise true.</returns>
    public bool Trains(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return !(FreezeEmbeddings && name.EndsWith("_emb.weight", StringComparison.Ordinal));
    }

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    /// <exception cref="ArgumentException">A preconditioner factor is not positive and finite.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(NoiseMultiplier, nameof(NoiseMultiplier));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxGradNorm, nameof(MaxGradNorm));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(SampleRate, nameof(SampleRate));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(SampleRate, 1.0, nameof(SampleRate));
        if (StepsProblem(SampleRate, 1) is string tooMany)
        {
            throw new ArgumentOutOfRangeException(nameof(SampleRate), SampleRate, tooMany);
        }

        if (!(PreconditionSplit >= 0 && PreconditionSplit <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(PreconditionSplit), PreconditionSplit, "PreconditionSplit must be in [0, 1].");
        }

        if (Preconditioner is not null)
        {
            for (int i = 0; i < Preconditioner.Count; i++)
            {
                if (!(Preconditioner[i] > 0) || float.IsInfinity(Preconditioner[i]))
                {
                    throw new ArgumentException($"Preconditioner[{i}] is {Preconditioner[i]}; every factor must be a positive finite number.", nameof(Preconditioner));
                }
            }
        }
    }
}
