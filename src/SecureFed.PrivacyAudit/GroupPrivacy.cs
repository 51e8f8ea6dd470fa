namespace SecureFed.PrivacyAudit;

/// <summary>
/// The guarantee DP gives a group of sentences. A canary inserted r times is not one example but a group of r: if the
/// training is (ε, δ)-DP for one example, it is (rε, r·e^{(r−1)ε}·δ)-DP for adding or removing r examples (the group
/// privacy of Dwork and Roth, "The Algorithmic Foundations of Differential Privacy", 2014, §2.3: applying the
/// definition r times along a chain of neighbouring datasets gives δ·(1 + e^ε + … + e^{(r−1)ε}) ≤ r·e^{(r−1)ε}·δ). An
/// empirical bound measured on groups of r must be compared with that, not with ε.
/// </summary>
public static class GroupPrivacy
{
    /// <summary>
    /// (rε, r·e^{(r−1)ε}·δ) for a group of <paramref name="groupSize"/>, or null when that δ is 1 or more: the
    /// guarantee then says nothing (e.g. ε = 8 and r = 100), and no empirical bound can contradict it.
    /// </summary>
    /// <param name="epsilon">ε for one example, ≥ 0.</param>
    /// <param name="delta">δ for one example, in [0, 1].</param>
    /// <param name="groupSize">r ≥ 1; r = 1 returns (ε, δ).</param>
    public static (double Epsilon, double Delta)? Of(double epsilon, double delta, int groupSize)
    {
        if (!(epsilon >= 0) || double.IsInfinity(epsilon))
        {
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "ε must be finite and ≥ 0.");
        }

        if (!(delta >= 0 && delta <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(delta), delta, "δ must be in [0, 1].");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        if (groupSize == 1)
        {
            return (epsilon, delta);
        }

        double logDelta = delta == 0 ? double.NegativeInfinity : Math.Log(groupSize) + ((groupSize - 1) * epsilon) + Math.Log(delta);
        return logDelta >= 0 ? null : (groupSize * epsilon, Math.Exp(logDelta));
    }
}
