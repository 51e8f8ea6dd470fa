namespace SecureFed.Audit;

/// <summary>
/// The audit event vocabulary. The report and the cross-checks read these types and the field names in
/// <see cref="AuditFieldNames"/>; agents must open their log with the site id the aggregator uses as actor.
/// </summary>
public static class AuditEvents
{
    /// <summary>Written by <see cref="AuditLog.Open(string, string, SecureFed.Crypto.Ed25519PrivateKey, string, TimeProvider?)"/> each time a log is opened: {origin, verifier_key, resumed_lines}.</summary>
    public const string LogOpened = "log.opened";

    /// <summary>A torn last line was moved to quarantine on open: {line, bytes, sha256, file}.</summary>
    public const string TornTailQuarantined = "log.torn_tail_quarantined";

    /// <summary>Aggregator: {round, cohort[], threshold, bit_width, vector_length, dp{...}}.</summary>
    public const string RoundOpened = "round.opened";

    /// <summary>Aggregator: a key advertisement arrived: {round, site, sha256}.</summary>
    public const string KeysReceived = "keys.received";

    /// <summary>Aggregator: encrypted shares relayed for a site: {round, site, count}.</summary>
    public const string SharesRelayed = "shares.relayed";

    /// <summary>Aggregator: a masked input arrived: {round, site, bytes, sha256}.</summary>
    public const string MaskedInputReceived = "masked_input.received";

    /// <summary>
    /// Aggregator (cluster coordinator, protocol version 4): one slice of a masked input arrived at this process itself:
    /// {round, site, slice, bytes, sha256}. The site's <see cref="MaskedInputReceived"/> follows when the stage closes, with
    /// every slice's digest (slices_sha256) as the cluster recorded them.
    /// </summary>
    public const string MaskedInputSliceReceived = "masked_input.slice_received";

    /// <summary>Aggregator: sites dropped at a stage: {round, stage, sites[]}.</summary>
    public const string Dropout = "dropout";

    /// <summary>Aggregator: unmasking requested from a site: {round, site, survivors[], dropped[]}.</summary>
    public const string UnmaskRequested = "unmask.requested";

    /// <summary>Aggregator: a site's unmasking response (counts only, never shares): {round, site, b_shares, s_shares}.</summary>
    public const string UnmaskResponse = "unmask.response";

    /// <summary>
    /// Aggregator: the fused model: {round, model_version, sha256, participants[], total_weight, server_update{rule,
    /// learning_rate, and for momentum/adam beta1, step, for adam beta2, tau, noise_variance, noise_floor}}: the update
    /// rule that turned the sum into this model (docs/PROTOCOL.md §5, "Server update rule"). Written at a restart after
    /// the aggregator stopped between storing the model and logging it: {round, model_version, sha256, participants[], note}.
    /// </summary>
    public const string AggregateProduced = "aggregate.produced";

    /// <summary>
    /// Aggregator: model versions deleted from the round store (<c>SecureFed:KeepModelVersions</c>) in the transaction
    /// that stored <c>model_version</c>: {round, model_version, keep, pruned{version: sha256}}. Written after the round's
    /// <see cref="AggregateProduced"/>; an auditor can no longer fetch those versions' bytes from the aggregator. Written at
    /// a restart after the aggregator stopped between storing the model and logging it, with a <c>note</c> saying so.
    /// </summary>
    public const string ModelsPruned = "models.pruned";

    /// <summary>Aggregator: privacy budget spent so far: {round, guarantee, epsilon, delta, budget, rho}.</summary>
    public const string PrivacySpent = "privacy.spent";

    /// <summary>Aggregator: {round, stage, reason}.</summary>
    public const string RoundAborted = "round.aborted";

    /// <summary>
    /// Aggregator: the federation's score of the round's starting model from the secure sum of the sites' counts
    /// (docs/PROTOCOL.md, "Federated evaluation"): {round, model_version, evaluators, tp, fp, fn, precision, recall, f1,
    /// per_type{type: {tp, fp, fn, f1}}}, or {round, model_version, withheld: reason} when none was published. Aggregate
    /// information only; no site's own score exists outside that site. Written at a restart after the aggregator stopped
    /// between storing the round's model and logging it, with a <c>note</c> saying so.
    /// </summary>
    public const string FederatedEvaluation = "evaluation.federated";

    /// <summary>Aggregator: {round}.</summary>
    public const string RoundCompleted = "round.completed";

    /// <summary>Aggregator {round, site, reason} or agent {round, reason}: a request was refused.</summary>
    public const string Refusal = "refusal";

    /// <summary>
    /// Aggregator: refusals of one caller that were refused but not written as <see cref="Refusal"/> lines, because the
    /// caller had used up its refusal lines (a burst, then one line per refill interval; docs/PROTOCOL.md §9):
    /// {site, suppressed (the count), since and until (the first and last suppressed refusal's time), categories{category:
    /// count} (the kinds, e.g. wrong_federation), burst, refill_seconds}. Written as soon as the caller may have a line
    /// again, and for every pending count when the aggregator stops.
    /// </summary>
    public const string RefusalsSuppressed = "refusal.suppressed";

    /// <summary>{message}.</summary>
    public const string Error = "error";

    /// <summary>
    /// Aggregator (cluster coordinator): this coordinator took over with round-affecting settings that differ from those
    /// the previous coordinator saved, on purpose (<c>SecureFed:Cluster:AcceptChangedSettings</c>): {epoch, saved_epoch,
    /// saved_sha256, sha256, changes{setting: {previous, current}}} (docs/cluster.md §6, "Coordinator settings").
    /// </summary>
    public const string CoordinatorSettingsChanged = "coordinator.settings_changed";

    /// <summary>
    /// A share accusation (docs/PROTOCOL.md, "Blame"). Aggregator: {round, accuser, accused, at_fault, reason,
    /// envelope_sha256, signature, excluded_rounds}, or, for a site whose revealed shares determine another secret than
    /// it committed to, or one found by a search by elimination (no accuser): {round, accused, at_fault, reason,
    /// excluded_rounds}; agent: {round, accused, reason,
    /// envelope_sha256}.
    /// </summary>
    public const string Blame = "blame";

    /// <summary>
    /// Aggregator: a round's decoded sum was out of its bound (blaming nobody), and the out-of-bound search took a step
    /// (docs/PROTOCOL.md, "Blame"): {round, contributors (the sites whose inputs were in that sum), suspects (the sites in
    /// every such sum since the search began), held_out (the suspects held out of this attempt, so now cleared), restarted}. When one suspect
    /// is left, a <see cref="Blame"/> line {round, accused, at_fault, reason, excluded_rounds} follows.
    /// </summary>
    public const string OutOfBoundSearch = "blame.out_of_bound_search";

    /// <summary>
    /// Aggregator: a secret could not be rebuilt from its revealed shares and the shares could not show who was at fault
    /// (a dealer's shares off every polynomial look like lying responders), and the search by elimination took a step
    /// (docs/PROTOCOL.md, "Blame: by elimination"): {round, involved (the secret's owner and the sites that revealed its
    /// shares), held_out (the suspects held out of this attempt, so now cleared), suspects (the sites involved in every
    /// such failure since the search began), restarted}. When
    /// one suspect is left, a <see cref="Blame"/> line {round, accused, at_fault, reason, excluded_rounds} follows.
    /// </summary>
    public const string UnrebuiltSecretSearch = "blame.unrebuilt_secret_search";

    /// <summary>
    /// Aggregator: sites complained that share envelopes relayed to them did not open (signed complaints without a key,
    /// so nobody can tell an invalid envelope from a false complaint), the attempt ended (aborted, or, for complaints made
    /// after masked inputs were in the sum, gone on without the complainers), and the search by elimination took a step
    /// (docs/PROTOCOL.md, "Blame"): {round, involved (every complaining site and every site
    /// complained of in this attempt), held_out, suspects, restarted}. When one suspect is left, a <see cref="Blame"/>
    /// line {round, accused, at_fault, reason, excluded_rounds} follows.
    /// </summary>
    public const string EnvelopeSearch = "blame.envelope_search";

    /// <summary>
    /// Aggregator: a site complained that the share envelope relayed to it from another did not open (a signed complaint
    /// without a key; docs/PROTOCOL.md, "Blame"): {round, accuser, accused, envelope_sha256, signature}. The attempt is
    /// aborted while no masked input is in the sum (after that it goes on without the complainer), and an
    /// <see cref="EnvelopeSearch"/> step follows when it ends.
    /// </summary>
    public const string ShareComplaint = "blame.complaint";

    /// <summary>
    /// Aggregator: a search by elimination held these suspects out of the attempt that just opened (docs/PROTOCOL.md,
    /// "Blame: by elimination"): {round, held_out}.
    /// </summary>
    public const string SearchHeldOut = "blame.held_out";

    /// <summary>
    /// Aggregator: a search by elimination saw no failure in its quiet window of completed attempts and ended
    /// (docs/PROTOCOL.md, "Blame: by elimination"): {round, search (`out_of_bound` or `unrebuilt_secret`), suspects,
    /// quiet_attempts (the window; the next search's is twice as long)}.
    /// </summary>
    public const string SearchEnded = "blame.search_ended";

    /// <summary>Agent: a message left the site: {round, message_type, bytes, sha256 of the exact bytes sent}.</summary>
    public const string MessageSent = "message.sent";

    /// <summary>
    /// Agent: a privacy-ledger entry: {round, guarantee, epsilon, delta, budget, ...}; guarantee "record" is the
    /// patient-level (DP-SGD) ε, "site" the site-level ε; budget is the ε the site checks that guarantee against.
    /// </summary>
    public const string PrivacyLedger = "privacy.ledger";

    /// <summary>
    /// <c>securefed privacy ledger repair --apply</c> removed a torn last line (a crash in the middle of an append) from the
    /// privacy ledger beside this log, written by the command with the owner's kit, agent's or aggregator's: {file (the
    /// ledger's name), line (the torn line's number), bytes and sha256 (of the torn bytes removed), original_bytes,
    /// kept_bytes and kept_sha256 (of the complete lines kept, the ledger's first kept_bytes bytes from then on), backup
    /// (the name of the untouched original beside the ledger), entries (kept), kept{guarantee: {entries, epsilon, delta}}
    /// (each guarantee's ε after its last kept entry, as the ledger recorded it)}. Written and signed by a checkpoint
    /// before the ledger is replaced: a line whose ledger was not replaced (the command stopped in between) is followed
    /// by the line of the repair run again.
    /// </summary>
    public const string PrivacyLedgerRepaired = "privacy.ledger_repaired";

    /// <summary>Agent: {round, version, sha256}.</summary>
    public const string ModelReceived = "model.received";

    /// <summary>Agent: {round}.</summary>
    public const string RoundJoined = "round.joined";

    /// <summary>The <c>message_type</c> of an agent's masked input (matched against <see cref="MaskedInputReceived"/>).</summary>
    public const string MaskedInputMessageType = "masked_input";
}
