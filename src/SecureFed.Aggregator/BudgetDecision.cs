namespace SecureFed.Aggregator;

/// <summary>Whether the federation may spend more site-level privacy budget, and why not.</summary>
public readonly record struct BudgetDecision(bool Allowed, double EpsilonBefore, double EpsilonAfter, string Reason);
