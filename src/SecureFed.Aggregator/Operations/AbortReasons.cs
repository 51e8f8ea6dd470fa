namespace SecureFed.Aggregator.Operations;

/// <summary>
/// The low-cardinality reason label of <c>securefed.aggregator.rounds.aborted</c>, derived from the coordinator's abort
/// reason (whose full text goes to the log, the store and the audit log).
/// </summary>
internal static class AbortReasons
{
    public const string BelowThreshold = "below_threshold";
    public const string Blame = "blame";
    public const string Shutdown = "shutdown";
    public const string Failure = "failure";
    public const string Protocol = "protocol";

    public static string Classify(string reason) => reason switch
    {
        _ when reason.StartsWith("only ", StringComparison.Ordinal) => BelowThreshold,
        _ when reason.Contains("invalid share envelope", StringComparison.Ordinal) => Blame,
        _ when reason.Contains("dealt shares of another secret", StringComparison.Ordinal) => Blame,
        _ when reason.Contains("shutting down", StringComparison.Ordinal) => Shutdown,
        _ when reason.StartsWith("the round failed at ", StringComparison.Ordinal) => Failure,
        _ => Protocol,
    };
}
