using SecureFed.Crypto;
using SecureFed.Privacy;

namespace SecureFed.Protocol;

/// <summary>
/// The arithmetic around one secure-aggregation round of federated averaging, shared by the aggregator, the agent and
/// the in-process experiments so that all three compute bit-for-bit the same thing: planning the input-vector codec
/// (aggregator), turning a site's model delta into its privatized input vector (agent), and turning the unmasked sum
/// into the next global model (aggregator).
/// </summary>
public static class FederatedAveraging
{
    /// <summary>Coordinates decoded at a time by <see cref="ApplyAggregate(ReadOnlySpan{float}, UpdateCodec, ReadOnlySpan{uint}, long, double, Span{float})"/> (4 KiB of doubles on the stack).</summary>
    private const int DecodeBlock = 512;

    /// <summary>
    /// The threshold t of a round over <paramref name="plan"/>: the configured one (0 = the planner's), capped at the
    /// neighbourhood size and raised to a strict majority of it; over a sparse (Harary) graph never below the
    /// planner's t, the smallest that meets the privacy bound (agents refuse less, <see cref="GraphPlanner.CheckAnnounced"/>).
    /// </summary>
    public static int Threshold(GraphPlan plan, int configuredThreshold)
    {
        ArgumentNullException.ThrowIfNull(plan);
        int threshold = configuredThreshold == 0 ? plan.Threshold : Math.Min(configuredThreshold, plan.Degree + 1);
        if (2 * threshold <= plan.Degree + 1)
        {
            threshold = ((plan.Degree + 1) / 2) + 1;
        }

        if (!plan.IsComplete)
        {
            threshold = Math.Max(threshold, plan.Threshold);
        }

        return threshold;
    }

    /// <summary>
    /// The smallest threshold <see cref="Threshold(GraphPlan, int)"/> gives a round of any cohort size from
    /// <paramref name="fewest"/> to <paramref name="most"/> sites under <paramref name="policy"/>, and the smallest
    /// cohort size that has it. t is not monotone in n: while the planner uses the complete graph t = max(min(T, n),
    /// ⌊n/2⌋ + 1) grows with n, but from the first cohort size with a sparse (Harary) graph on (above
    /// <see cref="GraphPlanner.CompleteGraphLimit"/> sites under the complete policy, from k + 2 sites under the sparse
    /// one) the plan, and so t, is the same for every larger cohort, and usually far smaller (t = 66 of k + 1 = 131
    /// holders above 512 sites, against 257 at 512). The planner's sizes with a complete graph come first and those with
    /// a Harary graph after, so the minimum is at <paramref name="fewest"/> or at the first Harary size, found by bisection.
    /// </summary>
    /// <param name="fewest">The smallest cohort, at least 2.</param>
    /// <param name="most">The largest cohort, at least <paramref name="fewest"/> (at most the planner's 20,000).</param>
    /// <param name="policy">The graph policy the rounds are planned under (γ and δ the planner's defaults).</param>
    /// <param name="configuredThreshold">The configured threshold (0 = the planner's).</param>
    public static (int CohortSize, int Threshold) SmallestThreshold(int fewest, int most, GraphPolicy policy, int configuredThreshold)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(fewest, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(most, fewest);
        (int CohortSize, int Threshold) smallest = (fewest, Threshold(GraphPlanner.Plan(fewest, policy), configuredThreshold));
        GraphPlan largest = GraphPlanner.Plan(most, policy);
        if (largest.IsComplete)
        {
            return smallest; // complete throughout: t grows with n
        }

        // The first size with a Harary graph: complete below it, Harary (the same k and t) from it on.
        int low = fewest;
        int high = most;
        while (low < high)
        {
            int mid = low + ((high - low) / 2);
            (low, high) = GraphPlanner.Plan(mid, policy).IsComplete ? (mid + 1, high) : (low, mid);
        }

        int sparse = Threshold(GraphPlanner.Plan(low, policy), configuredThreshold);
        return sparse < smallest.Threshold ? (low, sparse) : smallest;
    }

    /// <summary>
    /// Plans the codec of a round (the largest fixed-point scale whose sum of <paramref name="cohortSize"/> inputs plus
    /// the site-noise headroom cannot wrap) and the distributed discrete Gaussian that goes with it.
    /// </summary>
    /// <param name="parameterCount">d.</param>
    /// <param name="l2Clip">S, the site-level L2 clip of an update.</param>
    /// <param name="cohortSize">n.</param>
    /// <param name="threshold">t.</param>
    /// <param name="siteNoiseMultiplier">z of the distributed discrete Gaussian (&gt; 0).</param>
    /// <param name="weightCap">Cap on the example count in the weight slot.</param>
    /// <param name="evaluation">The federated-evaluation slots (null = none).</param>
    public static (UpdateCodec Codec, DistributedDpPlan Plan) PlanRound(int parameterCount, double l2Clip, int cohortSize, int threshold, double siteNoiseMultiplier, int weightCap, EvaluationLayout? evaluation = null)
    {
        // Noise headroom in update units: 20 standard deviations of the noise in a sum of up to n site shares,
        // with 10% slack for the rounding inflation of the sensitivity.
        double headroom = DistributedDp.HeadroomStandardDeviations * siteNoiseMultiplier * l2Clip * 1.1 * Math.Sqrt((double)cohortSize / threshold);
        UpdateCodec codec = UpdateCodec.Plan(parameterCount, l2Clip, cohortSize, headroom, weightCap, evaluation: evaluation);
        DistributedDpPlan dpPlan = DistributedDp.Plan(l2Clip, codec.Scale, parameterCount, cohortSize, threshold, siteNoiseMultiplier);
        return (codec, dpPlan);
    }

    /// <summary>
    /// A site's side: clips <paramref name="delta"/> (in place) to L2 norm <paramref name="l2Clip"/>, weights it by
    /// ω = min(examples, cap) / cap, quantizes it with stochastic rounding into <paramref name="destination"/> (plus the
    /// weight slot) and adds this site's discrete Gaussian share of parameter <paramref name="sigmaSite"/> (0 = none).
    /// </summary>
    /// <returns>The L2 norm of the delta before clipping.</returns>
    public static double PrivatizeUpdate(float[] delta, long examples, UpdateCodec codec, double l2Clip, double sigmaSite, IRandomSource random, Span<uint> destination) =>
        PrivatizeUpdate(delta, examples, null, codec, l2Clip, sigmaSite, random, destination);

    /// <summary>
    /// As <see cref="PrivatizeUpdate(float[], long, UpdateCodec, double, double, IRandomSource, Span{uint})"/>, and puts
    /// the site's evaluation <paramref name="counts"/> of the received model (null = none) into the codec's evaluation
    /// slots as exact integers clamped to the announced cap. The counts get no noise: the site-level noise covers the
    /// model coordinates only (docs/PROTOCOL.md, "Federated evaluation").
    /// </summary>
    /// <returns>The L2 norm of the delta before clipping.</returns>
    public static double PrivatizeUpdate(float[] delta, long examples, EvaluationCounts? counts, UpdateCodec codec, double l2Clip, double sigmaSite, IRandomSource random, Span<uint> destination)
    {
        ArgumentNullException.ThrowIfNull(delta);
        ArgumentNullException.ThrowIfNull(codec);
        ArgumentNullException.ThrowIfNull(random);
        if (!(sigmaSite >= 0) || double.IsInfinity(sigmaSite))
        {
            // ThrowIfNegative lets a NaN with its sign bit clear through, and "sigmaSite > 0" below is then false: the
            // update would leave without its site-level noise while the ledgers count it.
            throw new ArgumentOutOfRangeException(nameof(sigmaSite), sigmaSite, "The per-site noise σ must be a finite number >= 0.");
        }

        double norm = UpdateClipping.ClipL2(delta, l2Clip);
        long weight = codec.Weight(examples);
        float omega = (float)weight / codec.WeightCap;
        for (int i = 0; i < delta.Length; i++)
        {
            delta[i] *= omega;
        }

        codec.Encode(delta, examples, destination, random);
        if (sigmaSite > 0)
        {
            DistributedDp.AddNoise(destination[..codec.ParameterCount], codec.BitWidth, sigmaSite, new DiscreteGaussianSampler(random));
        }

        codec.EncodeEvaluation(counts, destination);
        return norm;
    }

    /// <summary>
    /// The aggregator's side: the next global model from the unmasked <paramref name="sum"/>. Each site sent ω_u·Δ_u
    /// with ω_u = w_u / cap, so the weighted average is Σ ω_u Δ_u / Σ ω_u; it is applied with the server learning rate.
    /// The sum is decoded a block at a time (no whole-model <c>double[]</c>), so the only whole-model allocation is the result.
    /// </summary>
    /// <exception cref="RoundAbortedException">The total weight is not positive or the result is not finite.</exception>
    public static float[] ApplyAggregate(ReadOnlySpan<float> baseModel, UpdateCodec codec, ReadOnlySpan<uint> sum, double serverLearningRate, out long totalWeight)
    {
        ArgumentNullException.ThrowIfNull(codec);
        long weight = codec.DecodeTotalWeight(sum);
        totalWeight = weight;
        if (weight <= 0)
        {
            throw new RoundAbortedException(ProtocolStage.Unmasking, $"the aggregated weight is {weight}; nothing to average");
        }

        if (baseModel.Length != codec.ParameterCount)
        {
            throw new ArgumentException($"The base model has {baseModel.Length} parameters; the codec expects {codec.ParameterCount}.", nameof(baseModel));
        }

        float[] next = new float[baseModel.Length];
        ApplyAggregate(baseModel, codec, sum[..codec.ParameterCount], weight, serverLearningRate, next);
        return next;
    }

    /// <summary>
    /// The update rule of <see cref="ApplyAggregate(ReadOnlySpan{float}, UpdateCodec, ReadOnlySpan{uint}, double, out long)"/>
    /// on any contiguous run of coordinates (e.g. one slice of the model): coordinate i of the result depends only on
    /// coordinate i of the base model and of the sum, and on the public total weight W, so the runs put together are the
    /// whole-vector result bit for bit.
    /// </summary>
    /// <param name="baseModel">The base model's values on the run.</param>
    /// <param name="codec">The round's codec.</param>
    /// <param name="sumCoordinates">The unmasked sum's words on the same run (coordinates only, no weight slot).</param>
    /// <param name="totalWeight">W, decoded from the sum's weight slot (<see cref="UpdateCodec.DecodeTotalWeight"/>).</param>
    /// <param name="serverLearningRate">The server learning rate.</param>
    /// <param name="destination">The next model's values on the run (may not overlap the inputs).</param>
    /// <exception cref="RoundAbortedException">The total weight is not positive or a result is not finite.</exception>
    public static void ApplyAggregate(ReadOnlySpan<float> baseModel, UpdateCodec codec, ReadOnlySpan<uint> sumCoordinates, long totalWeight, double serverLearningRate, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(codec);
        if (sumCoordinates.Length != baseModel.Length || destination.Length != baseModel.Length)
        {
            throw new ArgumentException($"The base model ({baseModel.Length}), the sum's coordinates ({sumCoordinates.Length}) and the destination ({destination.Length}) must have the same length.");
        }

        if (totalWeight <= 0)
        {
            throw new RoundAbortedException(ProtocolStage.Unmasking, $"the aggregated weight is {totalWeight}; nothing to average");
        }

        double omegaSum = (double)totalWeight / codec.WeightCap;
        Span<double> block = stackalloc double[DecodeBlock];
        for (int offset = 0; offset < baseModel.Length; offset += DecodeBlock)
        {
            int count = Math.Min(DecodeBlock, baseModel.Length - offset);
            Span<double> updateSum = block[..count];
            codec.DecodeCoordinates(sumCoordinates.Slice(offset, count), updateSum);
            ReadOnlySpan<float> before = baseModel.Slice(offset, count);
            Span<float> next = destination.Slice(offset, count);
            bool finite = true;
            for (int i = 0; i < count; i++)
            {
                next[i] = (float)(before[i] + (serverLearningRate * updateSum[i] / omegaSum));
                finite &= float.IsFinite(next[i]);
            }

            if (!finite)
            {
                throw new RoundAbortedException(ProtocolStage.Unmasking, "the averaged update is not finite");
            }
        }
    }

    /// <summary>
    /// The aggregator's side with a <see cref="ServerOptimizer"/>: the weighted mean Σ ω_u Δ_u / Σ ω_u of the sites'
    /// deltas from the unmasked <paramref name="sum"/>, for <see cref="ServerOptimizer.Step"/>.
    /// </summary>
    /// <exception cref="RoundAbortedException">The total weight is not positive.</exception>
    public static double[] AverageUpdate(UpdateCodec codec, ReadOnlySpan<uint> sum, out long totalWeight)
    {
        ArgumentNullException.ThrowIfNull(codec);
        (double[] updateSum, long weight) = codec.Decode(sum);
        totalWeight = weight;
        if (weight <= 0)
        {
            throw new RoundAbortedException(ProtocolStage.Unmasking, $"the aggregated weight is {weight}; nothing to average");
        }

        double omegaSum = (double)weight / codec.WeightCap;
        for (int i = 0; i < updateSum.Length; i++)
        {
            updateSum[i] /= omegaSum;
        }

        return updateSum;
    }

    /// <summary>
    /// The aggregator's side of federated evaluation: the federation's summed counts from the unmasked
    /// <paramref name="sum"/> of the <paramref name="contributors"/>' inputs, published only when the number of them that
    /// declared "scored" (outside the sum) equals the decoded flag E and E is at least <paramref name="minimumEvaluators"/>
    /// (so the totals are a sum over several sites, never one site's score, unless sites that lie about their own flag
    /// collude). Null with the reason when the round carries no evaluation, the sum is impossible (a site put more than the
    /// cap into its slots), the flag disagrees with the declarations, or too few sites evaluated. Never aborts the round:
    /// the model is unaffected.
    /// </summary>
    public static FederatedEvaluation? Evaluate(UpdateCodec codec, ReadOnlySpan<uint> sum, IReadOnlyList<ScoringDeclaration> contributors, int minimumEvaluators, out string? rejection)
    {
        ArgumentNullException.ThrowIfNull(codec);
        ArgumentNullException.ThrowIfNull(contributors);
        ArgumentOutOfRangeException.ThrowIfLessThan(minimumEvaluators, 1);
        return PublishedOnly(codec.DecodeEvaluation(sum, contributors.Count, out rejection), contributors, minimumEvaluators, ref rejection);
    }

    /// <summary>
    /// As <see cref="Evaluate"/>, from the sum's tail only (its words from index d on:
    /// <see cref="UpdateCodec.TailLength"/> of them).
    /// </summary>
    public static FederatedEvaluation? EvaluateTail(UpdateCodec codec, ReadOnlySpan<uint> tail, IReadOnlyList<ScoringDeclaration> contributors, int minimumEvaluators, out string? rejection)
    {
        ArgumentNullException.ThrowIfNull(codec);
        ArgumentNullException.ThrowIfNull(contributors);
        ArgumentOutOfRangeException.ThrowIfLessThan(minimumEvaluators, 1);
        return PublishedOnly(codec.DecodeEvaluationFromTail(tail, contributors.Count, out rejection), contributors, minimumEvaluators, ref rejection);
    }

    /// <summary>
    /// The decoded evaluation when exactly as many contributors declared "scored" as the summed flag counts, and at least
    /// <paramref name="minimumEvaluators"/> of them; otherwise null with the reason.
    /// </summary>
    private static FederatedEvaluation? PublishedOnly(FederatedEvaluation? evaluation, IReadOnlyList<ScoringDeclaration> contributors, int minimumEvaluators, ref string? rejection)
    {
        if (evaluation is null)
        {
            return null;
        }

        int declared = contributors.Count(c => c.Scored == true);
        if (declared != evaluation.Evaluators)
        {
            string[] silent = [.. contributors.Where(c => c.Scored is null).Select(c => c.Site)];
            string unstated = silent.Length == 0 ? ""
                : $" ({silent.Length} sent no declaration and count as not scored: {string.Join(", ", silent)})";
            rejection = $"withheld: the summed evaluation flag is {evaluation.Evaluators} but {declared} of {contributors.Count} contributors declared they scored the model{unstated}; "
                + "a site's flag disagrees with its declaration, so the sum could be fewer sites' score than it claims";
            return null;
        }

        if (evaluation.Evaluators < minimumEvaluators)
        {
            rejection = $"only {evaluation.Evaluators} of {contributors.Count} contributors scored the model; at least {minimumEvaluators} are needed before the federation's score is published";
            return null;
        }

        return evaluation;
    }
}
