namespace SecureFed.PrivacyAudit;

/// <summary>
/// The attack statistics of the audit: membership-inference AUC and true-positive rate at a fixed false-positive rate
/// (a higher score means "member"), the ROC curve, and canary exposure (Carlini et al., "The Secret Sharer", 2019).
/// </summary>
public static class AuditStatistics
{
    /// <summary>
    /// The difficulty-calibrated membership score of each example: log p under the attacked model minus log p under a
    /// reference model trained without the example (equivalently, reference loss minus target loss). A raw loss
    /// mostly ranks how easy an example is; subtracting the reference's loss leaves how much the training lowered it
    /// (Watson et al., "On the Importance of Difficulty Calibration in Membership Inference Attacks", ICLR 2022;
    /// Carlini et al., "Membership Inference Attacks From First Principles" (LiRA), IEEE S&amp;P 2022, with one
    /// reference model and no variance scaling). Higher means "member".
    /// </summary>
    /// <param name="target">log p of each example under the attacked (fused) model.</param>
    /// <param name="reference">log p of the same examples under the reference model.</param>
    public static double[] Calibrated(IReadOnlyList<double> target, IReadOnlyList<double> reference)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(reference);
        if (target.Count != reference.Count)
        {
            throw new ArgumentException($"{target.Count} target scores but {reference.Count} reference scores.", nameof(reference));
        }

        var result = new double[target.Count];
        for (int i = 0; i < result.Length; i++)
        {
            if (!double.IsFinite(target[i]) || !double.IsFinite(reference[i]))
            {
                throw new ArgumentException($"example {i}: scores must be finite (target {target[i]}, reference {reference[i]}).", nameof(target));
            }

            result[i] = target[i] - reference[i];
        }

        return result;
    }

    /// <summary>
    /// Each score minus the median score of the examples with the same label: for canaries whose label was drawn at
    /// random, the label's prior (how likely the model finds that label in that context) is removed and membership is
    /// what remains. Uses the scores and labels only, never the inclusion bits, so an audit on the result stays valid.
    /// </summary>
    /// <param name="scores">One score per example.</param>
    /// <param name="label">The binary label of each example.</param>
    public static double[] CenteredByLabel(IReadOnlyList<double> scores, IReadOnlyList<bool> label)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(label);
        if (scores.Count != label.Count)
        {
            throw new ArgumentException($"{scores.Count} scores but {label.Count} labels.", nameof(label));
        }

        double[] result = [.. scores];
        foreach (bool value in new[] { false, true })
        {
            int[] members = [.. Enumerable.Range(0, scores.Count).Where(i => label[i] == value)];
            if (members.Length == 0)
            {
                continue;
            }

            double[] sorted = [.. members.Select(i => scores[i]).Order()];
            double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
            foreach (int i in members)
            {
                result[i] = scores[i] - median;
            }
        }

        return result;
    }

    /// <summary>
    /// Area under the ROC curve: the probability that a random member scores above a random non-member, ties counting
    /// one half (the Mann–Whitney U statistic over |members| · |non-members|). 0.5 is chance.
    /// </summary>
    public static double Auc(IReadOnlyList<double> members, IReadOnlyList<double> nonMembers)
    {
        CheckScores(members, nonMembers);
        // Mid-ranks over the pooled scores; U = (rank sum of members) − n₁(n₁ + 1)/2.
        var pooled = members.Select(s => (Score: s, Member: true)).Concat(nonMembers.Select(s => (Score: s, Member: false))).OrderBy(p => p.Score).ToArray();
        double memberRankSum = 0;
        int i = 0;
        while (i < pooled.Length)
        {
            int j = i;
            while (j + 1 < pooled.Length && pooled[j + 1].Score == pooled[i].Score)
            {
                j++;
            }

            double midRank = ((i + 1) + (j + 1)) / 2.0;
            for (int k = i; k <= j; k++)
            {
                if (pooled[k].Member)
                {
                    memberRankSum += midRank;
                }
            }

            i = j + 1;
        }

        double n1 = members.Count;
        double u = memberRankSum - (n1 * (n1 + 1) / 2);
        return u / (n1 * nonMembers.Count);
    }

    /// <summary>
    /// The highest true-positive rate of a threshold "score &gt; τ means member" whose false-positive rate is at most
    /// <paramref name="falsePositiveRate"/> on the given non-members.
    /// </summary>
    public static double TruePositiveRateAt(IReadOnlyList<double> members, IReadOnlyList<double> nonMembers, double falsePositiveRate)
    {
        CheckScores(members, nonMembers);
        if (!(falsePositiveRate >= 0 && falsePositiveRate <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(falsePositiveRate), falsePositiveRate, "must be in [0, 1].");
        }

        double[] descending = [.. nonMembers.OrderByDescending(s => s)];
        int allowed = (int)Math.Floor((falsePositiveRate * descending.Length) + 1e-9);
        if (allowed >= descending.Length)
        {
            return 1;
        }

        double threshold = descending[allowed]; // at most `allowed` non-members lie strictly above it
        return members.Count(s => s > threshold) / (double)members.Count;
    }

    /// <summary>The ROC curve of "score ≥ τ means member" over every distinct τ, from (0, 0) to (1, 1).</summary>
    public static IReadOnlyList<(double FalsePositiveRate, double TruePositiveRate)> RocCurve(IReadOnlyList<double> members, IReadOnlyList<double> nonMembers)
    {
        CheckScores(members, nonMembers);
        var points = new List<(double, double)> { (0, 0) };
        foreach (double threshold in members.Concat(nonMembers).Distinct().OrderByDescending(s => s))
        {
            points.Add((nonMembers.Count(s => s >= threshold) / (double)nonMembers.Count, members.Count(s => s >= threshold) / (double)members.Count));
        }

        return points;
    }

    /// <summary>
    /// Exposure of one canary, in bits: log₂|space| − log₂ rank, with the canary's rank in the whole candidate space
    /// estimated from a uniform sample of candidates that were never inserted: rank ≈ |space| · (h + 1) / (n + 1), h
    /// being the sampled candidates scoring at least as high as the canary (ties count against it) and n the sample
    /// size. That makes exposure = −log₂((h + 1) / (n + 1)), between 0 and log₂(n + 1): a sample of n resolves exposure
    /// up to log₂(n + 1) bits, so a canary ranked above every sampled candidate reads as that cap (a lower estimate).
    /// </summary>
    public static double Exposure(double canaryScore, IReadOnlyList<double> candidateScores)
    {
        ArgumentNullException.ThrowIfNull(candidateScores);
        if (candidateScores.Count == 0)
        {
            throw new ArgumentException("Exposure needs at least one candidate score.", nameof(candidateScores));
        }

        int higher = candidateScores.Count(s => s >= canaryScore);
        return -Math.Log2((higher + 1.0) / (candidateScores.Count + 1.0));
    }

    /// <summary>
    /// Exposure by extrapolation (Carlini et al. §4.3 fit a skew-normal; this fits a normal): the candidates' scores are
    /// summarised by their mean and standard deviation and exposure = −log₂ P[N(μ, σ²) ≥ canary score]. Unlike
    /// <see cref="Exposure"/> it is not capped by the sample size, but it is only as good as the normal fit of the tail.
    /// </summary>
    public static double ExtrapolatedExposure(double canaryScore, IReadOnlyList<double> candidateScores)
    {
        ArgumentNullException.ThrowIfNull(candidateScores);
        if (candidateScores.Count < 2)
        {
            throw new ArgumentException("Extrapolated exposure needs at least two candidate scores.", nameof(candidateScores));
        }

        double mean = candidateScores.Average();
        double sd = Math.Sqrt(candidateScores.Sum(s => (s - mean) * (s - mean)) / (candidateScores.Count - 1));
        if (sd == 0)
        {
            return canaryScore > mean ? double.PositiveInfinity : 0;
        }

        return -Internal.NormalTail.LogUpperTail((canaryScore - mean) / sd) / Math.Log(2);
    }

    private static void CheckScores(IReadOnlyList<double> members, IReadOnlyList<double> nonMembers)
    {
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(nonMembers);
        if (members.Count == 0 || nonMembers.Count == 0)
        {
            throw new ArgumentException($"Need members and non-members; got {members.Count} and {nonMembers.Count}.");
        }

        if (members.Concat(nonMembers).Any(double.IsNaN))
        {
            throw new ArgumentException("A score is NaN.");
        }
    }
}
