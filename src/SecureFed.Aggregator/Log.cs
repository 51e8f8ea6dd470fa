using Microsoft.Extensions.Logging;

namespace SecureFed.Aggregator;

internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Round {Round} opened with {Count} sites (t={Threshold}, k={Degree}, m={Length}, b={Bits})")]
    public static partial void RoundOpened(ILogger logger, long round, int count, int threshold, int degree, int length, int bits);

    [LoggerMessage(2, LogLevel.Information, "Round {Round} stage {Stage} closed: {Delivered} delivered, dropped [{Dropped}]")]
    public static partial void StageClosed(ILogger logger, long round, string stage, int delivered, string dropped);

    [LoggerMessage(3, LogLevel.Warning, "Round {Round} aborted at {Stage}: {Reason}")]
    public static partial void RoundAborted(ILogger logger, long round, string stage, string reason);

    [LoggerMessage(4, LogLevel.Information, "Round {Round} completed: model version {Version} from {Count} sites; site-level epsilon {Epsilon:F3}")]
    public static partial void RoundCompleted(ILogger logger, long round, long version, int count, double epsilon);

    [LoggerMessage(5, LogLevel.Warning, "Refused a message from {Site}: {Reason}")]
    public static partial void Refused(ILogger logger, string site, string reason);

    [LoggerMessage(6, LogLevel.Information, "Waiting for at least {MinSites} sites (have {Count})")]
    public static partial void WaitingForSites(ILogger logger, int minSites, int count);

    [LoggerMessage(7, LogLevel.Warning, "Federation budget reached: {Reason}")]
    public static partial void BudgetExhausted(ILogger logger, string reason);

    [LoggerMessage(8, LogLevel.Information, "Federation finished after {Rounds} rounds")]
    public static partial void Finished(ILogger logger, long rounds);

    [LoggerMessage(9, LogLevel.Warning, "Aborted {Count} round(s) interrupted by a restart")]
    public static partial void InterruptedRoundsAborted(ILogger logger, int count);

    [LoggerMessage(10, LogLevel.Information, "Site {Site} declined round {Round}: {Reason}")]
    public static partial void Declined(ILogger logger, string site, long round, string reason);

    [LoggerMessage(11, LogLevel.Warning, "Round {Round}: {Accuser} accused {Accused} of an invalid share envelope; at fault: {AtFault} ({Reason}); excluded from the next {Rounds} round attempt(s)")]
    public static partial void Blamed(ILogger logger, long round, string accuser, string accused, string atFault, string reason, int rounds);

    [LoggerMessage(54, LogLevel.Warning, "Round {Round}: {Accuser} could not open the share envelope from {Accused} (a signed complaint, no key); it leaves the attempt, which goes on while t masked inputs can still come, and the two are searched by elimination when it ends")]
    public static partial void Complained(ILogger logger, long round, string accuser, string accused);

    [LoggerMessage(12, LogLevel.Information, "Operator console: a browser logged in from {Remote}")]
    public static partial void OperatorLoggedIn(ILogger logger, string remote);

    [LoggerMessage(13, LogLevel.Warning, "Operator console: refused a login with a wrong token from {Remote}")]
    public static partial void OperatorLoginRefused(ILogger logger, string remote);

    [LoggerMessage(66, LogLevel.Warning, "Operator console: {Failures} wrong operator tokens {Scope} within {WindowMinutes} minutes (the last from {Remote}): token attempts {Refused} are refused with 429, the right token too, for {Seconds} s; browsers already logged in keep their sessions")]
    public static partial void OperatorLockedOut(ILogger logger, int failures, string scope, double windowMinutes, string remote, string refused, long seconds);

    [LoggerMessage(14, LogLevel.Information, "Operator console and metrics on {Address} (loopback only; operator token required)")]
    public static partial void AdminListening(ILogger logger, string address);

    [LoggerMessage(15, LogLevel.Information, "Round {Round}: federated evaluation of model version {Version} by {Evaluators} sites: F1 {F1:F3} (precision {Precision:F3}, recall {Recall:F3})")]
    public static partial void FederatedEvaluation(ILogger logger, long round, long version, int evaluators, double f1, double precision, double recall);

    [LoggerMessage(16, LogLevel.Warning, "Round {Round}: no federated evaluation published: {Reason}")]
    public static partial void EvaluationWithheld(ILogger logger, long round, string reason);

    [LoggerMessage(17, LogLevel.Error, "No round opened: {Reason}")]
    public static partial void NoRoundOpened(ILogger logger, string reason);

    [LoggerMessage(18, LogLevel.Error, "Coordinator stopped driving rounds: {Reason}")]
    public static partial void LeaseLost(ILogger logger, string reason);

    [LoggerMessage(19, LogLevel.Information, "Server update rule {Rule} (learning rate {LearningRate}): {History}")]
    public static partial void ServerRule(ILogger logger, string rule, double learningRate, string history);

    [LoggerMessage(20, LogLevel.Warning, "Round {Round}: the attempt that could not be opened was not recorded in the round servers' ledger: {Reason}")]
    public static partial void OpenFailureNotRecorded(ILogger logger, long round, string reason);

    [LoggerMessage(21, LogLevel.Warning, "Round {Round}: its abort at the coordinator takeover was not recorded in the round servers' ledger: {Reason}")]
    public static partial void InterruptedNotRecorded(ILogger logger, long round, string reason);

    [LoggerMessage(22, LogLevel.Debug, "{Method} from {Site} forwarded by silo {Silo}")]
    public static partial void Forwarded(ILogger logger, string method, string site, string silo);

    [LoggerMessage(23, LogLevel.Information, "Round {Round} stage {Stage}: closing work took {Seconds:F3} s")]
    public static partial void StageWork(ILogger logger, long round, string stage, double seconds);

    [LoggerMessage(24, LogLevel.Information, "Round {Round}: model versions pruned with version {Version} (SecureFed:KeepModelVersions = {Keep}): {Pruned}")]
    public static partial void ModelsPruned(ILogger logger, long round, long version, int keep, string pruned);

    [LoggerMessage(25, LogLevel.Information, "Round {Round}: {Bytes} bytes of the pruned model versions given back to the file system ('{Path}')")]
    public static partial void FreePagesReleased(ILogger logger, long round, long bytes, string path);

    [LoggerMessage(26, LogLevel.Warning, "Round {Round}: the pruned model versions' space in '{Path}' was not given back to the file system (the round and its model are stored; the space is reused by later models): {Reason}")]
    public static partial void FreePagesNotReleased(ILogger logger, long round, string path, string reason);

    [LoggerMessage(27, LogLevel.Warning, "{Count} refusals of {Site} were not audited one by one (too many; refused all the same) between {Since} and {Until}; audited as refusal.suppressed")]
    public static partial void RefusalsSuppressed(ILogger logger, long count, string site, string since, string until);

    [LoggerMessage(28, LogLevel.Warning, "Could not audit the {Count} suppressed refusals of {Site} yet (kept for the next attempt): {Error}")]
    public static partial void RefusalSummaryFailed(ILogger logger, string site, long count, string error);

    [LoggerMessage(29, LogLevel.Warning, "Round {Round}: {Dealer} dealt shares of another secret than it committed to ({Reason}); excluded from the next {Rounds} round attempt(s)")]
    public static partial void DealerBlamed(ILogger logger, long round, string dealer, string reason, int rounds);

    [LoggerMessage(30, LogLevel.Warning, "Refused a {Method} call of {Site} before reading it: the site already has {Limit} ShareKeys/Unmask calls in flight (SecureFed:MaxBulkCallsPerSite)")]
    public static partial void BulkCallRefused(ILogger logger, string site, string method, int limit);

    [LoggerMessage(38, LogLevel.Warning, "Refused a {Method} call of {Site} before reading it: the site already has {Limit} calls in flight at this process (SecureFed:MaxCallsPerSite)")]
    public static partial void CallRefused(ILogger logger, string site, string method, int limit);

    [LoggerMessage(53, LogLevel.Warning, "Refused a {Method} call of {Caller} before reading it: {Reason}")]
    public static partial void CallerRefused(ILogger logger, string caller, string method, string reason);

    [LoggerMessage(31, LogLevel.Warning, "Round {Round}: {Failure}; sites involved in every such failure so far: {Suspects}; held out of this attempt (now cleared): {HeldOut}; found: {Found}")]
    public static partial void EliminationStep(ILogger logger, long round, string failure, string suspects, string heldOut, string found);

    [LoggerMessage(32, LogLevel.Warning, "Round {Round}: {Site} found by elimination ({Reason}); excluded from the next {Rounds} round attempt(s)")]
    public static partial void FoundByElimination(ILogger logger, long round, string site, string reason, int rounds);

    [LoggerMessage(33, LogLevel.Information, "Round {Round}: held out of this attempt by a search by elimination: {HeldOut}")]
    public static partial void HeldOut(ILogger logger, long round, string heldOut);

    [LoggerMessage(34, LogLevel.Information, "Round {Round}: the {Search} search by elimination ended after {Quiet} completed attempts without a failure; its suspects were {Suspects}")]
    public static partial void SearchEnded(ILogger logger, long round, string search, int quiet, string suspects);

    [LoggerMessage(35, LogLevel.Warning, "Closed a connection of {Site} right after its TLS handshake: the site already holds {Limit} connections to the agent endpoint (SecureFed:MaxConnectionsPerSite); {Refused} connection(s) of the site refused since the last such line (at most one per site every 10 s)")]
    public static partial void ConnectionRefused(ILogger logger, string site, int limit, long refused);

    [LoggerMessage(36, LogLevel.Warning, "Ignored the exclusion row of site '{Site}' in '{Path}': {Problem}; the row is left as it is and the site is not excluded by it")]
    public static partial void ExclusionIgnored(ILogger logger, string site, string path, string problem);

    [LoggerMessage(37, LogLevel.Information, "Restored from '{Path}': sites found at fault and still excluded (round attempts left): {Sites}")]
    public static partial void ExclusionsRestored(ILogger logger, string path, string sites);

    [LoggerMessage(45, LogLevel.Warning, "{Failed} round attempts in a row did not complete (see their abort reasons and declines above); the next attempt opens in {Seconds} s (SecureFed:MaxRetryPauseSeconds caps the pause; a completed round resets it)")]
    public static partial void RetryPause(ILogger logger, int failed, double seconds);

    [LoggerMessage(46, LogLevel.Error, "Round {Round}: its round server could not be told that the attempt aborted ({Type}: {Message}); the abort is recorded in the round store and the audit log all the same")]
    public static partial void RoundServerAbortFailed(ILogger logger, long round, string type, string message);

    [LoggerMessage(47, LogLevel.Error, "Round {Round}: the abort ({Reason}) could not be fully recorded ({Type}: {Message}); the coordinator goes on with the next attempt")]
    public static partial void AbortNotRecorded(ILogger logger, long round, string reason, string type, string message);

    [LoggerMessage(48, LogLevel.Warning, "The threshold is t = {Threshold} for a cohort of {Sites} sites ({Which}), with {Holders} holders of each site's shares: every holder must answer the unmasking request, so any one site can abort every such round by staying silent after the others charged their privacy budgets, and it is not blamed (it looks like a dropout). {Fix} (threat-model/README.md section 7; docs/PROTOCOL.md section 2, A cohort of exactly t sites)")]
    public static partial void OneSiteCanAbort(ILogger logger, int threshold, int sites, string which, int holders, string fix);

    [LoggerMessage(49, LogLevel.Information, "Site {Site} is training for round {Round} and reports that it is still at work")]
    public static partial void TrainingReported(ILogger logger, string site, long round);

    [LoggerMessage(50, LogLevel.Warning, "Round {Round}: {Sites} reported training progress, then fell silent for {Seconds} s (ProgressSilenceSeconds); the keys stage goes on without them")]
    public static partial void SilentWhileTraining(ILogger logger, long round, string sites, int seconds);

    [LoggerMessage(51, LogLevel.Warning, "SecureFed:MinSites = {MinSites} but only {Sites} site(s) of the federation are not revoked: no round can open until more sites are provisioned (securefed provision) or MinSites is lowered")]
    public static partial void TooFewSitesNotRevoked(ILogger logger, int minSites, int sites);

    [LoggerMessage(52, LogLevel.Warning, "Round {Round}: {Sites} still training {Seconds:F0} s after enough sites for the round to complete had advertised their keys ({QuorumSeconds:F0} s after it opened; StragglerWaitFactor, StragglerMinWaitSeconds); the keys stage goes on without them, {Advertised} of {Cohort} advertised")]
    public static partial void StragglersLeftOut(ILogger logger, long round, string sites, double seconds, int advertised, int cohort, double quorumSeconds);

    [LoggerMessage(58, LogLevel.Warning, "Round {Round}: {Site} had not answered the {Stage} stage {Seconds:F0} s after every other member had ({QuorumSeconds:F0} s after the stage opened; StragglerWaitFactor, StageStragglerMinWaitSeconds); the stage goes on without it, {Answered} of {Expected} answered")]
    public static partial void StageStragglerLeftOut(ILogger logger, long round, string site, string stage, double seconds, int answered, int expected, double quorumSeconds);

    [LoggerMessage(62, LogLevel.Warning, "Round {Round}: the unmasking stage waits for its last member {Site} until its deadline instead of leaving it out: the answers so far would not rebuild every secret ({Shortfall})")]
    public static partial void LastMemberAwaited(ILogger logger, long round, string site, string shortfall);

    [LoggerMessage(63, LogLevel.Warning, "Refused {Method} of site '{Site}' before parsing its request: {Reason}")]
    public static partial void RefusedBeforeParsing(ILogger logger, string site, string method, string reason);

    [LoggerMessage(64, LogLevel.Warning, "Round {Round}: could not ask whether the unmasking answers so far rebuild every secret ({Error}); the stage leaves its last member {Site} out as the wait allows")]
    public static partial void UnmaskingShortfallUnknown(ILogger logger, long round, string site, string error);

    [LoggerMessage(56, LogLevel.Warning, "Round {Round}: the straggler wait starts at {Quorum} advertisements, not t, and a later stage leaves its last member out only with {Quorum} answers: the {Attempts} attempt(s) before it left stragglers or a last member out and then aborted")]
    public static partial void StragglerWaitLater(ILogger logger, long round, int quorum, int attempts);

    [LoggerMessage(55, LogLevel.Warning, "Round {Round} was charged to the federation's site-level ledger although it did not complete (ρ = {Rho:G6} for {Survivors} survivor(s), ε now {Epsilon:F3}): {Reason}")]
    public static partial void ChargedWithoutModel(ILogger logger, long round, double rho, int survivors, double epsilon, string reason);

    [LoggerMessage(57, LogLevel.Warning, "Round {Round} completed before the aggregator stopped, but was not yet charged to the federation's site-level ledger: charged now (ρ = {Rho:G6} for {Participants} participant(s), ε now {Epsilon:F3}), and its missing audit lines logged")]
    public static partial void ChargedAtRestart(ILogger logger, long round, double rho, int participants, double epsilon);

    [LoggerMessage(59, LogLevel.Warning, "Round {Round} completed before the aggregator stopped (model version {Version} from {Participants} sites; site-level epsilon {Epsilon:F3}), but its completion was not fully audited: logged now, each with a note saying so: {Lines}")]
    public static partial void CompletionRecovered(ILogger logger, long round, long version, int participants, double epsilon, string lines);

    [LoggerMessage(60, LogLevel.Warning, "Round {Round} was charged to the federation's site-level ledger (epsilon now {Epsilon:F3}) before the aggregator stopped, but the charge was not audited: its privacy.spent line logged now")]
    public static partial void ChargeLoggedAtRestart(ILogger logger, long round, double epsilon);

    // Debug: any member of a past round's cohort may ask again and again, each answer at once and not a refusal, so it is
    // outside the per-site refusal bucket that keeps one site from filling the log (threat model C19; diff review).
    [LoggerMessage(61, LogLevel.Debug, "Site {Site} asked for the outcome of round {Round}, which is no longer open here: answered from the round store ({Outcome})")]
    public static partial void RecordedOutcome(ILogger logger, string site, long round, string outcome);

    [LoggerMessage(65, LogLevel.Warning, "{What} '{Path}' has mode {Mode} and belongs to {Owner}: other users than its owner may read this private key, and it is used only because SecureFed:AcceptReadableKeys is true. Whoever can read it can act as {Party}; give it mode 0400 where the platform allows (a Kubernetes Secret's defaultMode) and turn the setting off")]
    public static partial void ReadableKeyAccepted(ILogger logger, string what, string path, string mode, string owner, string party);
}
