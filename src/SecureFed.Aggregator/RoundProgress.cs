using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>A progress notification from the coordinator (for live displays such as the demo).</summary>
/// <param name="Round">Round number.</param>
/// <param name="Stage">Stage name or event ("opened", "AdvertiseKeys", …, "completed", "aborted").</param>
/// <param name="Participants">Sites still in the round.</param>
/// <param name="Dropped">Sites that dropped at this stage.</param>
/// <param name="Detail">Human-readable detail (abort reason, epsilon, model version).</param>
/// <param name="SiteEpsilon">Federation-level site-guarantee ε spent so far.</param>
public sealed record RoundProgress(long Round, string Stage, IReadOnlyList<string> Participants, IReadOnlyList<string> Dropped, string Detail, double SiteEpsilon)
{
    /// <summary>
    /// On "completed": the federation's score of the model the round started from (federated evaluation: a sum over
    /// the contributors, never one site's score); null when none was published.
    /// </summary>
    public FederatedEvaluation? Evaluation { get; init; }
}
