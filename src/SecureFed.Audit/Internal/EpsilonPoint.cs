namespace SecureFed.Audit.Internal;

/// <summary>Cumulative ε after a round, as one actor logged it; <paramref name="Budget"/> is null when the log names none.</summary>
internal sealed record EpsilonPoint(long Round, double Epsilon, double? Delta, double? Budget, LogRef Source)
{
    public bool OverBudget => Budget is { } budget && Epsilon > budget;
}
