namespace SecureFed.Protocol;

/// <summary>
/// Entity-level exact-match counts (conlleval): true positives, false positives and false negatives, and the scores
/// they give (0 when undefined).
/// </summary>
/// <param name="TruePositives">Predicted chunks that match a gold chunk exactly (span and type).</param>
/// <param name="FalsePositives">Predicted chunks that match no gold chunk.</param>
/// <param name="FalseNegatives">Gold chunks that no predicted chunk matches.</param>
public readonly record struct EntityCounts(long TruePositives, long FalsePositives, long FalseNegatives)
{
    /// <summary>TP / (TP + FP).</summary>
    public double Precision => TruePositives + FalsePositives == 0 ? 0 : (double)TruePositives / (TruePositives + FalsePositives);

    /// <summary>TP / (TP + FN).</summary>
    public double Recall => TruePositives + FalseNegatives == 0 ? 0 : (double)TruePositives / (TruePositives + FalseNegatives);

    /// <summary>2·TP / (2·TP + FP + FN): the harmonic mean of precision and recall.</summary>
    public double F1 => TruePositives == 0 ? 0 : 2.0 * TruePositives / ((2.0 * TruePositives) + FalsePositives + FalseNegatives);

    /// <summary>The component-wise sum.</summary>
    public static EntityCounts operator +(EntityCounts left, EntityCounts right) =>
        new(left.TruePositives + right.TruePositives, left.FalsePositives + right.FalsePositives, left.FalseNegatives + right.FalseNegatives);

    /// <summary>The component-wise sum (named alternative to the operator).</summary>
    public static EntityCounts Add(EntityCounts left, EntityCounts right) => left + right;
}
