namespace SecureFed.Protocol;

/// <summary>The masking topology and Shamir threshold chosen for a cohort.</summary>
/// <param name="CohortSize">n.</param>
/// <param name="Degree">Neighbours per site (n-1 for the complete graph).</param>
/// <param name="Threshold">t: shares needed to reconstruct a secret, and the minimum number of sites at every stage.</param>
/// <param name="IsComplete">True for the complete graph.</param>
public sealed record GraphPlan(int CohortSize, int Degree, int Threshold, bool IsComplete);
