using Microsoft.Extensions.Logging;

namespace SecureFed.Agent;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "{Site}: joined round {Round} ({Count} sites, t={Threshold})")]
    public static partial void Joined(ILogger logger, string site, long round, int count, int threshold);

    [LoggerMessage(2, LogLevel.Warning, "{Site}: declined round {Round}: {Reason}")]
    public static partial void Declined(ILogger logger, string site, long round, string reason);

    [LoggerMessage(3, LogLevel.Warning, "{Site}: refused to continue round {Round}: {Reason}")]
    public static partial void Refused(ILogger logger, string site, long round, string reason);

    [LoggerMessage(4, LogLevel.Information, "{Site}: round {Round} {Outcome}; record epsilon {RecordEpsilon:F3}, site epsilon {SiteEpsilon:F3}")]
    public static partial void RoundDone(ILogger logger, string site, long round, string outcome, double recordEpsilon, double siteEpsilon);

    [LoggerMessage(5, LogLevel.Warning, "{Site}: round {Round} ended early: {Reason}")]
    public static partial void RoundEnded(ILogger logger, string site, long round, string reason);

    [LoggerMessage(6, LogLevel.Information, "{Site}: simulated dropout before {Stage} of round {Round}")]
    public static partial void SimulatedDrop(ILogger logger, string site, string stage, long round);

    [LoggerMessage(8, LogLevel.Warning, "{Site}: still waiting for the aggregator at {Endpoint}: it is unreachable ({Detail}); trying again in {Seconds} s (attempt {Attempt})")]
    public static partial void Unreachable(ILogger logger, string site, string endpoint, string detail, double seconds, int attempt);

    [LoggerMessage(7, LogLevel.Information, "{Site}: the federation has finished")]
    public static partial void FederationFinished(ILogger logger, string site);

    [LoggerMessage(9, LogLevel.Error, "{Site}: local training failed in round {Round}; withdrawing from the round and stopping")]
    public static partial void TrainingFailed(ILogger logger, string site, long round, Exception exception);

    [LoggerMessage(10, LogLevel.Critical, "{Site}: the agent stopped because of an error")]
    public static partial void AgentFailed(ILogger logger, string site, Exception exception);

    [LoggerMessage(12, LogLevel.Information, "{Site}: stopped by the operator")]
    public static partial void StoppedByOperator(ILogger logger, string site);

    [LoggerMessage(13, LogLevel.Critical, "{Site}: the agent stopped: {Reason}")]
    public static partial void AgentStopped(ILogger logger, string site, string reason);

    [LoggerMessage(11, LogLevel.Information, "{Site}: this agent's metrics are at {Address}metrics (loopback only)")]
    public static partial void MetricsListening(ILogger logger, string site, string address);

    [LoggerMessage(18, LogLevel.Warning, "{Site}: SecureFed:TrainFile is not set, so this agent trains on SecureFed's built-in synthetic clinical corpus ({Sentences} sentences, for demos and tests), not on this site's records, and its rounds still spend its privacy budget. Set TrainFile (and DevFile) in the SecureFed section of its configuration to the site's CoNLL files.")]
    public static partial void SyntheticCorpus(ILogger logger, string site, int sentences);

    [LoggerMessage(14, LogLevel.Information, "{Site}: stopped during round {Round}; its decline was not delivered ({Detail}), so the aggregator will see a dropout at the training deadline")]
    public static partial void StopDeclineNotDelivered(ILogger logger, string site, long round, string detail);

    [LoggerMessage(15, LogLevel.Debug, "{Site}: a training progress report for round {Round} was not delivered ({Reason}); the next one follows in {Seconds} s")]
    public static partial void ProgressNotDelivered(ILogger logger, string site, long round, string reason, int seconds);

    [LoggerMessage(16, LogLevel.Debug, "{Site}: no more training progress reports for round {Round}: the aggregator answered {Reason}")]
    public static partial void ProgressStopped(ILogger logger, string site, long round, string reason);

    [LoggerMessage(19, LogLevel.Warning, "{Site}: round {Round} announces base model version {Announced}, below version {Previous} that this site last downloaded: the aggregator's model history went back (restored from a backup, or a hostile aggregator); this site takes part on the announced version")]
    public static partial void ModelVersionWentBack(ILogger logger, string site, long round, ulong announced, long previous);

    [LoggerMessage(17, LogLevel.Error, "{Site}: {Explanation}")]
    public static partial void ModelSpecMismatch(ILogger logger, string site, string explanation);

    [LoggerMessage(20, LogLevel.Warning, "{What} '{Path}' has mode {Mode} and belongs to {Owner}: other users than its owner may read this private key, and it is used only because SecureFed:AcceptReadableKeys is true. Whoever can read it can act as {Party}; give it mode 0400 where the platform allows (a Kubernetes Secret's defaultMode) and turn the setting off")]
    public static partial void ReadableKeyAccepted(ILogger logger, string what, string path, string mode, string owner, string party);
}
