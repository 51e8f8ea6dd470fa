namespace SecureFed.PrivacyAudit;

/// <summary>The outcome of a one-run audit (<see cref="OneRunAudit.Run"/>).</summary>
/// <param name="Examples">m, audit examples each included with probability ½.</param>
/// <param name="Guesses">r, guesses made at the chosen k (k "in" + k "out").</param>
/// <param name="Correct">v, correct guesses.</param>
/// <param name="EpsilonLowerBound">ε lower bound at the overall confidence.</param>
/// <param name="PValueUsed">The per-test p after the Bonferroni correction over the guess grid.</param>
public sealed record OneRunAuditResult(int Examples, int Guesses, int Correct, double EpsilonLowerBound, double PValueUsed);
