using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Aggregator;

/// <summary>
/// Builds the <see cref="RoundOutcome"/> an agent reads with <c>AwaitRoundOutcome</c>. One builder for both answers: the
/// live one, when the coordinator ends an attempt (<see cref="RoundCoordinator"/>), and the recorded one, built from the
/// round store for an attempt that is no longer the coordinator's current one (a later attempt opened, or the aggregator
/// restarted or a coordinator took over: <see cref="RoundCoordinator.RecordedOutcomeAsync"/>). Built in two places, the
/// two answers drifted apart unnoticed (a field added to one only).
/// </summary>
internal static class RoundOutcomes
{
    /// <summary>The header of an outcome: the attempt it reports, at the stage of its last call (unmasking).</summary>
    public static Header Header(string federation, long round, string sessionId) => new()
    {
        FederationId = federation,
        Round = (ulong)round,
        SessionId = sessionId,
        Stage = Stage.Unmasking,
        Sender = "aggregator",
    };

    /// <summary>An attempt that ended without a model, with the reason and the federation's site-level ε spent after it.</summary>
    public static RoundOutcome Aborted(Header header, string reason, double siteEpsilonSpent) =>
        new() { Header = header, Completed = false, AbortReason = reason, SiteEpsilonSpent = siteEpsilonSpent };

    /// <summary>
    /// A completed attempt: the model version it produced and its SHA-256, the contributors (the sites whose inputs are in
    /// the sum) and the dropped members (the rest of <paramref name="cohort"/>, in cohort order), the site-level ε spent
    /// after it, and the federated evaluation of its starting model: the scores, or the note saying why none was published
    /// (neither when the attempt carried no evaluation).
    /// </summary>
    public static RoundOutcome Completed(Header header, long modelVersion, string modelSha256, IReadOnlyList<string> contributors, IEnumerable<string> cohort,
        double siteEpsilonSpent, FederatedEvaluation? evaluation, string? evaluationNote)
    {
        var outcome = new RoundOutcome
        {
            Header = header,
            Completed = true,
            ModelVersion = (ulong)modelVersion,
            ModelSha256 = modelSha256,
            SiteEpsilonSpent = siteEpsilonSpent,
        };
        outcome.Contributors.AddRange(contributors);
        outcome.Dropped.AddRange(cohort.Except(contributors, StringComparer.Ordinal));
        if (evaluation is not null)
        {
            outcome.Evaluators = (uint)evaluation.Evaluators;
            outcome.Evaluation.Add(Score("", evaluation.Overall));
            outcome.Evaluation.AddRange(evaluation.PerType.Select(t => Score(t.Key, t.Value)));
        }
        else if (evaluationNote is not null)
        {
            outcome.EvaluationNote = evaluationNote;
        }

        return outcome;

        static FederatedScore Score(string type, EntityCounts c) => new()
        {
            EntityType = type,
            TruePositives = (ulong)c.TruePositives,
            FalsePositives = (ulong)c.FalsePositives,
            FalseNegatives = (ulong)c.FalseNegatives,
            F1 = c.F1,
        };
    }
}
