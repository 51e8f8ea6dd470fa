using System.Globalization;
using System.Text.Json;

using SecureFed.Privacy;

namespace SecureFed.Audit.Internal;

/// <summary>
/// What the report states, computed from verified logs before any HTML is written: the verdict (problems that fail
/// the audit, notes that do not), rounds and who took part, ε per site against its budget, and the masked-input
/// cross-check. Every fact keeps the log line it comes from.
/// </summary>
internal sealed class AuditFindings
{
    /// <summary>The guarantee name agents log for patient-level (DP-SGD, record-level) ε.</summary>
    public const string PatientGuarantee = "record";

    /// <summary>The guarantee name logged for site-level (whole-hospital, distributed DP) ε.</summary>
    public const string SiteGuarantee = "site";

    private const int MaxListedDiscrepancies = 5;

    /// <summary>
    /// How far below a site's ρ the federation's charge of the same round may be and still cover it: agents compute the
    /// round's noise plan themselves and accept an announced σ down to 0.999 of theirs (PROTOCOL.md §6), so their ρ may
    /// exceed the aggregator's by a few parts in a thousand; one survivor more than there were lowers ρ by far more.
    /// </summary>
    private const double RhoTolerance = 0.01;

    /// <summary>At most this many impossible values are named per log (then a count).</summary>
    private const int MaxValueProblemsPerLog = 5;

    /// <summary>The largest plausible round number: 2^53, the largest integer a JSON number keeps exactly.</summary>
    private const double MaxPlausibleRound = 9_007_199_254_740_992;

    /// <summary>
    /// Lines in which the logging party states one of its own rounds: the aggregator writes them only for a round it
    /// opened, an agent only for a round it joined or its own ledger. Other lines (a refusal, a refusal summary, an error)
    /// may carry a round number another party claimed — a caller's request header up to 2^64 − 1 — so an implausible
    /// round there says nothing about the logging party and is not checked.
    /// </summary>
    private static readonly HashSet<string> OwnRoundEvents = new(StringComparer.Ordinal)
    {
        AuditEvents.RoundOpened, AuditEvents.KeysReceived, AuditEvents.SharesRelayed, AuditEvents.MaskedInputReceived,
        AuditEvents.MaskedInputSliceReceived, AuditEvents.Dropout, AuditEvents.UnmaskRequested, AuditEvents.UnmaskResponse,
        AuditEvents.AggregateProduced, AuditEvents.PrivacySpent, AuditEvents.RoundAborted, AuditEvents.FederatedEvaluation,
        AuditEvents.RoundCompleted, AuditEvents.Blame, AuditEvents.OutOfBoundSearch, AuditEvents.UnrebuiltSecretSearch, AuditEvents.EnvelopeSearch, AuditEvents.ShareComplaint,
        AuditEvents.SearchHeldOut, AuditEvents.SearchEnded, AuditEvents.MessageSent, AuditEvents.PrivacyLedger,
        AuditEvents.ModelReceived, AuditEvents.RoundJoined,
    };

    /// <summary>Fields that count something (bytes, shares, sites, steps): never negative.</summary>
    private static readonly string[] CountFields =
        [AuditFieldNames.Bytes, AuditFieldNames.Count, AuditFieldNames.Threshold, AuditFieldNames.BitWidth, AuditFieldNames.VectorLength,
         AuditFieldNames.BShares, AuditFieldNames.SShares, "steps"];

    /// <summary>Impossible content found while collecting (ε not a number, a round completed that was never opened…), in log order.</summary>
    private readonly List<string> _impossible = [];

    private AuditFindings(List<LogView> logs)
    {
        Logs = logs;
    }

    public List<LogView> Logs { get; }

    public List<LogView> Aggregators => [.. Logs.Where(l => l.Role == "aggregator")];

    public List<LogView> Agents => [.. Logs.Where(l => l.Role == "agent")];

    public List<RoundFacts> Rounds { get; } = [];

    /// <summary>Every site seen: cohorts in order of first appearance, then agents that no cohort names.</summary>
    public List<string> Sites { get; } = [];

    /// <summary>Patient-level ε per site (from the site's own log), in log order.</summary>
    public SortedDictionary<string, List<EpsilonPoint>> PatientEpsilon { get; } = new(StringComparer.Ordinal);

    /// <summary>Other ε series (site-level and any other guarantee), keyed by "guarantee" then by actor.</summary>
    public SortedDictionary<string, SortedDictionary<string, List<EpsilonPoint>>> OtherEpsilon { get; } = new(StringComparer.Ordinal);

    public List<CrossCheckRow> CrossCheck { get; } = [];

    /// <summary>
    /// Site-level charges of a site for a round whose masked input the aggregator logged receiving, and that the
    /// aggregator's own site-level charges (privacy.spent) do not cover: the federation's ε understates what was spent.
    /// </summary>
    public List<string> Undercharged { get; } = [];

    /// <summary>Findings that fail the audit, as sentences.</summary>
    public List<string> Problems { get; } = [];

    /// <summary>
    /// Findings that do not fail the audit but that an auditor must look at: lines no signature covers yet, content that
    /// is suspicious but possible (a budget changed between agent restarts, a round opened twice). Named in the headline.
    /// </summary>
    public List<string> Warnings { get; } = [];

    /// <summary>Findings worth knowing that do not fail the audit.</summary>
    public List<string> Notes { get; } = [];

    /// <summary>Well-formed lines after the newest signed checkpoint, over all logs: left out of every figure.</summary>
    public int UnverifiedLines => Logs.Sum(l => l.Unverified.Count);

    public bool Passed => Problems.Count == 0;

    public int FailedLogs => Logs.Count(l => !l.Verification.Ok);

    public int CrossCheckMismatches => CrossCheck.Count(r => !r.Ok);

    public int RoundsCompleted => Rounds.Count(r => r.State == RoundState.Completed);

    public int RoundsAborted => Rounds.Count(r => r.State == RoundState.Aborted);

    public int Dropouts => Rounds.Sum(r => r.Dropouts.Count);

    public List<string> SitesOverBudget => [.. PatientEpsilon.Where(p => p.Value.Any(e => e.OverBudget)).Select(p => p.Key)];

    /// <summary>One sentence: PASSED or FAILED and why.</summary>
    public string Headline
    {
        get
        {
            if (Passed)
            {
                string all = Logs.Count == 1 ? "the only log is intact" : $"all {Plural(Logs.Count, "log")} intact";
                string budget = PatientEpsilon.Count == 0 ? "no patient-level ε logged" : "every site within its patient-level ε budget";
                return $"PASSED: {all}, {Plural(RoundsCompleted, "round")} completed, {RoundsAborted} aborted, {Plural(Dropouts, "dropout")}, 0 cross-check discrepancies, {budget}.{Caveats()}";
            }

            var reasons = new List<string>();
            if (FailedLogs > 0)
            {
                reasons.Add($"{FailedLogs} of {Plural(Logs.Count, "log")} failed verification ({string.Join(", ", Logs.Where(l => !l.Verification.Ok).Select(l => l.Actor))})");
            }

            if (CrossCheckMismatches > 0)
            {
                reasons.Add(string.Create(CultureInfo.InvariantCulture, $"{CrossCheckMismatches} cross-check discrepanc{(CrossCheckMismatches == 1 ? "y" : "ies")}"));
            }

            List<string> over = SitesOverBudget;
            if (over.Count > 0)
            {
                reasons.Add($"patient-level ε over budget at {string.Join(", ", over)}");
            }

            if (Undercharged.Count > 0)
            {
                reasons.Add($"the federation's site-level ledger does not cover {Plural(Undercharged.Count, "site-level charge")} of the sites");
            }

            int other = Problems.Count - FailedLogs - (CrossCheckMismatches > 0 ? 1 : 0) - over.Count - (Undercharged.Count > 0 ? 1 : 0);
            if (other > 0)
            {
                reasons.Add($"{Plural(other, "other problem")}");
            }

            return "FAILED: " + string.Join("; ", reasons) + "." + Caveats();
        }
    }

    /// <summary>What the verdict rests on that an auditor must know: unverified lines, warnings, keys not pinned.</summary>
    private string Caveats()
    {
        var text = new System.Text.StringBuilder();
        if (UnverifiedLines > 0)
        {
            text.Append(CultureInfo.InvariantCulture,
                $" UNVERIFIED: {Plural(UnverifiedLines, "line")} after the newest signed checkpoint ({string.Join(", ", Logs.Where(l => l.Unverified.Count > 0).Select(l => l.Actor))}) left out of every figure.");
        }

        // The UNVERIFIED entries of the warnings were stated just above: not counted again.
        int warnings = Warnings.Count - Logs.Count(l => l.Unverified.Count > 0);
        if (warnings > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $" {Plural(warnings, "warning")}.");
        }

        List<string> unpinned = [.. Logs.Where(l => !l.Pinned).Select(l => l.Actor)];
        if (unpinned.Count > 0)
        {
            text.Append(unpinned.Count == Logs.Count
                ? " Keys not pinned: each log was checked against its own verifier.key (pin them with --key)."
                : $" Keys not pinned for {string.Join(", ", unpinned)}: checked against their own verifier.key.");
        }

        return text.ToString();
    }

    /// <summary>"1 log", "2 logs".</summary>
    internal static string Plural(long count, string noun) =>
        string.Create(CultureInfo.InvariantCulture, $"{count} {noun}{(count == 1 ? string.Empty : "s")}");

    /// <param name="directories">Log directories.</param>
    /// <param name="verifierKeys">Null, or one key per directory (null for a log left unpinned), as <see cref="AuditVerifier.Verify"/> takes it.</param>
    /// <param name="previousCheckpoints">Null, or one kept checkpoint file per directory (null where none).</param>
    /// <exception cref="FormatException">A key is not a key.</exception>
    public static AuditFindings Compute(IReadOnlyList<string> directories, IReadOnlyList<string?>? verifierKeys = null, IReadOnlyList<string?>? previousCheckpoints = null)
    {
        if ((verifierKeys is not null && verifierKeys.Count != directories.Count) || (previousCheckpoints is not null && previousCheckpoints.Count != directories.Count))
        {
            throw new ArgumentException("Give one key and one previous checkpoint (or null) per log directory.", nameof(verifierKeys));
        }

        var logs = new List<LogView>();
        var duplicates = new List<string>();
        var sameActor = new List<string>();
        for (int i = 0; i < directories.Count; i++)
        {
            string? key = verifierKeys?[i];
            AuditVerification verification = AuditVerifier.VerifyCore(directories[i], key, previousCheckpoints?[i], keepEntries: true, out IReadOnlyList<LogEntry> entries);
            if (logs.Exists(l => Path.TrimEndingDirectorySeparator(l.Directory) == Path.TrimEndingDirectorySeparator(verification.Directory)))
            {
                // Counted once: a log given twice would double every figure ("4 rounds" for 2).
                duplicates.Add($"The log directory {verification.Directory} was given twice; it is counted once.");
                continue;
            }

            var view = new LogView(verification.Directory, verification, entries, pinned: key is not null);
            if (logs.Find(l => l.Actor == view.Actor && SameBytes(l.Directory, view.Directory)) is { } copy)
            {
                // A copy of a log given under another folder: counted once, like a folder given twice.
                sameActor.Add($"The log of {view.Actor} in {view.Directory} is a byte-identical copy of {copy.Directory}; it is counted once.");
                continue;
            }

            if (logs.Find(l => l.Actor == view.Actor) is { } twin)
            {
                // Every aggregator's actor is "aggregator": a coordinator that took over from a dead one (docs/cluster.md),
                // or a site re-enrolled into a new data directory, keeps a second log under the same name. Possible, so a
                // warning; but an impostor would look the same, so the auditor must know which logs they gave.
                sameActor.Add($"Two different logs name the same actor {view.Actor} ({twin.Directory} and {view.Directory}): a second log of one actor (a coordinator after a takeover, a site re-enrolled into a new data directory) or an impostor; both are counted, and the cross-check matches a site's inputs against its first log only. Check that both belong to this federation (pin their keys with --key).");
            }

            logs.Add(view);
        }

        var findings = new AuditFindings(logs);
        findings._impossible.AddRange(duplicates);
        findings.Warnings.AddRange(sameActor);
        findings.CheckValues();
        findings.CollectRounds();
        findings.CheckParticipants();
        findings.CollectSites();
        findings.CollectEpsilon();
        findings.CheckSiteEpsilon();
        findings.CollectCrossCheck();
        findings.CollectChargeCoverage();
        findings.Judge();
        return findings;
    }

    /// <summary>Whether two log directories hold byte-identical audit logs (a copy given under another folder).</summary>
    private static bool SameBytes(string first, string second)
    {
        var a = new FileInfo(Path.Combine(first, AuditLog.LogFileName));
        var b = new FileInfo(Path.Combine(second, AuditLog.LogFileName));
        // Not a regular file (a named pipe: opening it waits for a writer): verification already refused it, unopened.
        if (!a.Exists || !b.Exists || a.Length != b.Length || DurableFile.NotRegularKind(a.FullName) is not null || DurableFile.NotRegularKind(b.FullName) is not null)
        {
            return false;
        }

        using FileStream left = a.OpenRead();
        using FileStream right = b.OpenRead();
        return System.Security.Cryptography.SHA256.HashData(left).AsSpan().SequenceEqual(System.Security.Cryptography.SHA256.HashData(right));
    }

    internal static List<string> List(LogEntry entry, string name) =>
        entry.Fields.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Array
            ? [.. value.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText())]
            : [];

    private void CollectRounds()
    {
        foreach (LogView log in Aggregators)
        {
            var byRound = new Dictionary<long, RoundFacts>();
            long? lastOpened = null;
            foreach (LogEntry entry in log.Entries)
            {
                if (entry.Type == AuditEvents.RoundOpened && LogView.Number(entry, AuditFieldNames.Round) is { } opened)
                {
                    var facts = new RoundFacts { Aggregator = log, Round = (long)opened, Opened = entry, Cohort = List(entry, AuditFieldNames.Cohort) };
                    if (byRound.TryGetValue(facts.Round, out RoundFacts? earlier))
                    {
                        Warnings.Add($"{log.Actor} opened round {facts.Round} twice ({earlier.OpenedAt} and {facts.OpenedAt}).");
                    }
                    else if (lastOpened is { } last && facts.Round < last)
                    {
                        Warnings.Add($"{log.Actor} opened round {facts.Round} after round {last} ({facts.OpenedAt}): rounds out of order.");
                    }

                    lastOpened = lastOpened is { } previous ? Math.Max(previous, facts.Round) : facts.Round;
                    byRound[facts.Round] = facts;
                    Rounds.Add(facts);
                    continue;
                }

                // A round.aborted without a round number (logged after a restart, with the count of interrupted rounds)
                // ends every round of this log that is still open.
                IEnumerable<long> rounds = LogView.Number(entry, AuditFieldNames.Round) is { } number ? [(long)number]
                    : entry.Type == AuditEvents.RoundAborted ? [.. byRound.Values.Where(r => r.State == RoundState.Open).Select(r => r.Round)]
                    : [];
                foreach (long round in rounds)
                {
                    if (!byRound.TryGetValue(round, out RoundFacts? facts))
                    {
                        if (entry.Type == AuditEvents.RoundCompleted && log.Verification.Ok)
                        {
                            _impossible.Add($"{LogRef.Of(log, entry)}: round {round} completed, but {log.Actor} never opened it.");
                        }
                        else if (OwnRoundEvents.Contains(entry.Type) && entry.Type != AuditEvents.RoundAborted)
                        {
                            // The aggregator writes these only inside a round it opened, so one in a round this log never
                            // opened is a round whose round.opened (and round.completed) were deleted to hide it, not a
                            // line to skip. Not round.aborted: an attempt that could not be opened is aborted without one.
                            Impossible(log, $"{LogRef.Of(log, entry)}: {entry.Type} of round {round}, but {log.Actor} never opened that round (no round.opened before this line).");
                        }

                        continue;
                    }

                    switch (entry.Type)
                    {
                        case AuditEvents.RoundCompleted:
                            facts.State = RoundState.Completed;
                            facts.Ended = entry;
                            break;
                        case AuditEvents.RoundAborted:
                            facts.State = RoundState.Aborted;
                            facts.Ended = entry;
                            facts.AbortStage = LogView.Text(entry, AuditFieldNames.Stage);
                            facts.AbortReason = LogView.Text(entry, AuditFieldNames.Reason);
                            break;
                        case AuditEvents.Dropout:
                            string stage = LogView.Text(entry, AuditFieldNames.Stage);
                            facts.Dropouts.AddRange(List(entry, AuditFieldNames.Sites).Select(s => new SiteDropout(s, stage, LogRef.Of(log, entry))));
                            break;
                        case AuditEvents.AggregateProduced:
                            facts.Aggregate = entry;
                            facts.Participants = List(entry, AuditFieldNames.Participants);
                            if (facts.Participants.Where(p => !facts.Cohort.Contains(p, StringComparer.Ordinal)).ToList() is { Count: > 0 } strangers)
                            {
                                Impossible(log, $"{LogRef.Of(log, entry)}: the aggregate of round {round} names participant(s) {string.Join(", ", strangers)} outside the round's cohort ({facts.OpenedAt}).");
                            }

                            break;
                        case AuditEvents.MaskedInputReceived:
                            facts.MaskedInputs.Add(entry);
                            break;
                        case AuditEvents.UnmaskRequested:
                            facts.UnmaskRequested = entry;
                            facts.Survivors = List(entry, AuditFieldNames.Survivors);
                            break;
                        case AuditEvents.UnmaskResponse:
                            facts.UnmaskResponses.Add(entry);
                            break;
                        case AuditEvents.FederatedEvaluation:
                            facts.Evaluation = entry;
                            break;
                        case AuditEvents.Refusal:
                            const string Declined = "site declined: ";
                            string site = LogView.Text(entry, AuditFieldNames.Site);
                            string reason = LogView.Text(entry, AuditFieldNames.Reason);
                            if (reason.StartsWith(Declined, StringComparison.Ordinal))
                            {
                                facts.Declined[site] = (reason[Declined.Length..], LogRef.Of(log, entry));
                            }

                            break;
                    }
                }
            }
        }
    }

    /// <summary>
    /// Every participant an aggregate names must have had its masked input received in that round: a receipt
    /// (<c>masked_input.received</c>, or for an upload by slice a <c>masked_input.slice_received</c>) in some aggregator
    /// log given, and no dropout of that site at a stage before its input was taken (advertise_keys, share_keys,
    /// masked_input). A site that dropped at consistency or unmasking sent its input and is in the sum. Otherwise the
    /// report would show as a participant a site whose input no log accounts for, and the round would pass.
    /// </summary>
    private void CheckParticipants()
    {
        var received = new HashSet<(string Site, long Round)>();
        foreach (LogView aggregator in Aggregators)
        {
            foreach (LogEntry receipt in aggregator.Entries.Where(e => e.Type is AuditEvents.MaskedInputReceived or AuditEvents.MaskedInputSliceReceived))
            {
                if (LogView.Number(receipt, AuditFieldNames.Round) is { } round)
                {
                    received.Add((LogView.Text(receipt, AuditFieldNames.Site), (long)round));
                }
            }
        }

        foreach (RoundFacts facts in Rounds.Where(r => r.Aggregate is not null))
        {
            LogRef aggregate = LogRef.Of(facts.Aggregator, facts.Aggregate!);
            foreach (string site in facts.Participants.Where(p => facts.Cohort.Contains(p, StringComparer.Ordinal)))
            {
                if (facts.Dropouts.Find(d => d.Site == site && d.Stage is "advertise_keys" or "share_keys" or "masked_input") is { } dropout)
                {
                    Impossible(facts.Aggregator, $"{aggregate}: the aggregate of round {facts.Round} names {site} as a participant, but the aggregator logged {site} as a dropout of that round at {dropout.Stage} ({dropout.Source}), before its masked input could be in the sum.");
                }
                else if (!received.Contains((site, facts.Round)))
                {
                    Impossible(facts.Aggregator, $"{aggregate}: the aggregate of round {facts.Round} names {site} as a participant, but no aggregator log given shows {site}'s masked input of round {facts.Round} received ({AuditEvents.MaskedInputReceived} or {AuditEvents.MaskedInputSliceReceived}): an input in the sum that no log accounts for.");
                }
            }
        }
    }

    private void CollectSites()
    {
        foreach (string site in Rounds.SelectMany(r => r.Cohort).Concat(Agents.Select(a => a.Actor)))
        {
            if (!Sites.Contains(site, StringComparer.Ordinal))
            {
                Sites.Add(site);
            }
        }
    }

    private void CollectEpsilon()
    {
        foreach (LogView log in Logs)
        {
            // Per guarantee, the last point of this log: the budget and δ should not change. Per guarantee and δ, the last
            // point: cumulative ε at one δ never goes down. The agent's ledger allows another δ per entry (an agent restarted
            // with another SecureFed:Delta), and ε at a larger δ is smaller for the same spending, so ε is compared at equal δ only.
            var last = new Dictionary<string, EpsilonPoint>(StringComparer.Ordinal);
            var lastAtDelta = new Dictionary<string, EpsilonPoint>(StringComparer.Ordinal);
            foreach (LogEntry entry in log.Entries.Where(e => e.Type is AuditEvents.PrivacySpent or AuditEvents.PrivacyLedger))
            {
                double? round = LogView.Number(entry, AuditFieldNames.Round);
                double? epsilon = LogView.Number(entry, AuditFieldNames.Epsilon);
                if (round is null || epsilon is null)
                {
                    continue;
                }

                string named = LogView.Text(entry, AuditFieldNames.Guarantee);
                string kind = entry.Type + " " + named;
                double? budgetLogged = LogView.Number(entry, AuditFieldNames.Budget);
                if (budgetLogged is { } invalid && (!double.IsFinite(invalid) || invalid <= 0))
                {
                    // The agent refuses such a budget at start-up (AgentOptions: a positive number), and the ledger's Check refuses it.
                    Impossible(log, $"{LogRef.Of(log, entry)}: {log.Actor} logged ε budget {LogView.Text(entry, AuditFieldNames.Budget)}; a budget is a finite number above 0.");
                }

                if (!double.IsFinite(epsilon.Value) || epsilon.Value < 0)
                {
                    Impossible(log, $"{LogRef.Of(log, entry)}: {log.Actor} logged ε {LogView.Text(entry, AuditFieldNames.Epsilon)}; a spent ε is a finite number of 0 or more.");
                    continue;
                }

                string deltaText = LogView.Text(entry, AuditFieldNames.Delta);
                string kindAtDelta = kind + " δ=" + deltaText;
                if (lastAtDelta.TryGetValue(kindAtDelta, out EpsilonPoint? sameDelta) && epsilon.Value < sameDelta.Epsilon - (1e-9 * Math.Max(1, sameDelta.Epsilon)))
                {
                    string at = deltaText.Length == 0 ? string.Empty : $" at δ {deltaText}";
                    Impossible(log, string.Create(CultureInfo.InvariantCulture,
                        $"{LogRef.Of(log, entry)}: {log.Actor}'s cumulative ε{at} went down from {sameDelta.Epsilon:G6} ({sameDelta.Source}) to {epsilon.Value:G6}; spent ε can only grow."));
                }

                if (last.TryGetValue(kind, out EpsilonPoint? before))
                {
                    if (LogView.Number(entry, AuditFieldNames.Delta) != before.Delta)
                    {
                        // Like the budget: the agent logs its configured δ with each entry, so a change means a restart with another setting.
                        string deltaBefore = before.Delta is { } d ? d.ToString("G6", CultureInfo.InvariantCulture) : "none";
                        Warnings.Add(string.Create(CultureInfo.InvariantCulture,
                            $"{log.Actor} changed its {(named.Length == 0 ? "unnamed" : named)}-level δ from {deltaBefore} ({before.Source}) to {(deltaText.Length == 0 ? "none" : deltaText)} ({LogRef.Of(log, entry)}): a restart with another δ setting; ε at the new δ is not comparable with ε before (a larger δ gives a smaller ε), judge whether it was allowed."));
                    }

                    if (budgetLogged is { } now && before.Budget is { } then && now != then)
                    {
                        // The ledger keeps no budget: the agent logs its configured budget with each entry, so a change means it was restarted with another setting.
                        Warnings.Add(string.Create(CultureInfo.InvariantCulture,
                            $"{log.Actor} changed its {(named.Length == 0 ? "unnamed" : named)}-level ε budget from {then:G6} ({before.Source}) to {now:G6} ({LogRef.Of(log, entry)}): a restart with another budget setting; judge whether it was allowed."));
                    }

                    if ((long)round.Value < before.Round)
                    {
                        Warnings.Add($"{LogRef.Of(log, entry)}: {log.Actor} logged ε for round {(long)round.Value} after round {before.Round}: rounds out of order.");
                    }
                }

                var point = new EpsilonPoint((long)round.Value, epsilon.Value, LogView.Number(entry, AuditFieldNames.Delta),
                    LogView.Number(entry, AuditFieldNames.Budget), LogRef.Of(log, entry));
                last[kind] = point;
                lastAtDelta[kindAtDelta] = point;
                string guarantee = LogView.Text(entry, AuditFieldNames.Guarantee);
                if (entry.Type == AuditEvents.PrivacyLedger && guarantee == PatientGuarantee)
                {
                    Add(PatientEpsilon, log.Actor, point);
                    continue;
                }

                guarantee = guarantee.Length == 0 ? "(unnamed guarantee)" : guarantee;
                if (!OtherEpsilon.TryGetValue(guarantee, out SortedDictionary<string, List<EpsilonPoint>>? byActor))
                {
                    byActor = new SortedDictionary<string, List<EpsilonPoint>>(StringComparer.Ordinal);
                    OtherEpsilon[guarantee] = byActor;
                }

                Add(byActor, log.Actor, point);
            }
        }

        static void Add(SortedDictionary<string, List<EpsilonPoint>> series, string actor, EpsilonPoint point)
        {
            if (!series.TryGetValue(actor, out List<EpsilonPoint>? points))
            {
                points = [];
                series[actor] = points;
            }

            points.Add(point);
        }
    }

    /// <summary>
    /// Each site-level ε a log states (the aggregator's <c>privacy.spent</c>, a site's <c>privacy.ledger</c>) is its
    /// ledger's ε after the charge: the zCDP ρ of every site-level charge so far, composed and converted at the line's δ
    /// by the privacy ledger's own accountant (<see cref="RdpAccountant"/>, Opacus orders, improved conversion). So it is
    /// recomputed here from the ρ the same log states up to that line: an ε clearly below it (less
    /// <see cref="RhoTolerance"/>) understates what was spent, whatever the ρ checks say (they compare ρ, not ε). An ε
    /// above it is possible (a charge appended to the ledger just before a crash, so never logged), and only noted.
    /// Charges without a finite ρ count nothing (<see cref="CheckValues"/> names them), so the recomputed ε is never
    /// more than the log's own charges imply.
    /// </summary>
    private void CheckSiteEpsilon()
    {
        foreach (LogView log in Logs)
        {
            var accountant = new RdpAccountant(RdpOrders.Opacus);
            double rhoSum = 0;
            int charges = 0;
            bool overNoted = false;
            string who = log.Role == "aggregator" ? $"the federation ({log.Actor})" : $"site {log.Actor}";
            foreach (LogEntry entry in log.Entries.Where(e => e.Type is AuditEvents.PrivacySpent or AuditEvents.PrivacyLedger
                                                              && LogView.Text(e, AuditFieldNames.Guarantee) == SiteGuarantee))
            {
                if (RhoOf(entry) is not { } rho)
                {
                    continue;
                }

                accountant.AddZcdp(rho);
                rhoSum += rho;
                charges++;
                double? logged = LogView.Number(entry, AuditFieldNames.Epsilon);
                double? delta = LogView.Number(entry, AuditFieldNames.Delta);
                if (logged is not { } epsilon || !double.IsFinite(epsilon) || delta is not { } d || !(d > 0 && d < 1))
                {
                    continue; // no ε to compare (CollectEpsilon names an impossible one), or no δ to convert at
                }

                double recomputed = accountant.GetPrivacySpent(d).Epsilon;
                string round = LogView.Text(entry, AuditFieldNames.Round);
                if (epsilon < recomputed * (1 - RhoTolerance))
                {
                    Impossible(log, string.Create(CultureInfo.InvariantCulture,
                        $"Round {round}: {who} logged site-level ε {epsilon:G6} at δ {d:G6} ({LogRef.Of(log, entry)}), but the ρ of the {Plural(charges, "site-level charge")} it logged up to that line (ρ {rhoSum:G6} in all) is ε {recomputed:G6} at that δ, as the privacy ledger converts it: the logged ε understates what was spent."));
                }
                else if (epsilon > recomputed * (1 + RhoTolerance) && !overNoted)
                {
                    overNoted = true;
                    Notes.Add(string.Create(CultureInfo.InvariantCulture,
                        $"Round {round}: {who} logged site-level ε {epsilon:G6} at δ {d:G6} ({LogRef.Of(log, entry)}), more than the ε {recomputed:G6} the ρ of the {Plural(charges, "site-level charge")} it logged up to that line gives (ρ {rhoSum:G6} in all): its ledger holds charges this log does not show (one appended just before a crash, or a ledger older than the log)."));
                }
            }
        }
    }

    private void CollectCrossCheck()
    {
        List<LogView> aggregators = Aggregators;
        List<LogView> agents = Agents;

        // Indexed once (site, round, digest), so the cross-check is linear in the lines, not their product.
        var agentBySite = new Dictionary<string, LogView>(StringComparer.Ordinal);
        var sentBySiteRound = new Dictionary<(string Site, string Round), List<LogEntry>>();
        foreach (LogView agent in agents)
        {
            agentBySite.TryAdd(agent.Actor, agent);
            if (agentBySite[agent.Actor] != agent)
            {
                continue;
            }

            foreach (LogEntry sent in SentMaskedInputs(agent))
            {
                (string, string) key = (agent.Actor, LogView.Text(sent, AuditFieldNames.Round));
                if (!sentBySiteRound.TryGetValue(key, out List<LogEntry>? list))
                {
                    list = [];
                    sentBySiteRound[key] = list;
                }

                list.Add(sent);
            }
        }

        var receivedByKey = new Dictionary<(string Site, string Round, string Digest), (LogView Log, LogEntry Entry)>();
        var receivedUnverifiedByKey = new Dictionary<(string Site, string Round, string Digest), (LogView Log, LogEntry Entry)>();
        foreach (LogView aggregator in aggregators)
        {
            foreach (LogEntry received in aggregator.OfType(AuditEvents.MaskedInputReceived))
            {
                receivedByKey.TryAdd((LogView.Text(received, AuditFieldNames.Site), LogView.Text(received, AuditFieldNames.Round), InputDigest(received)), (aggregator, received));
            }

            foreach (LogEntry received in aggregator.Unverified.Where(e => e.Type == AuditEvents.MaskedInputReceived))
            {
                receivedUnverifiedByKey.TryAdd((LogView.Text(received, AuditFieldNames.Site), LogView.Text(received, AuditFieldNames.Round), InputDigest(received)), (aggregator, received));
            }
        }

        foreach (LogView aggregator in aggregators)
        {
            foreach (LogEntry received in aggregator.OfType(AuditEvents.MaskedInputReceived))
            {
                string round = LogView.Text(received, AuditFieldNames.Round);
                string site = LogView.Text(received, AuditFieldNames.Site);
                string sha = InputDigest(received);
                string detail;
                bool ok = false;
                bool unverified = false;
                if (!agentBySite.TryGetValue(site, out LogView? agent))
                {
                    detail = $"no log for site {site} was given";
                }
                else
                {
                    List<LogEntry> sent = sentBySiteRound.TryGetValue((site, round), out List<LogEntry>? list) ? list : [];
                    LogEntry? match = sent.Find(e => InputDigest(e) == sha);
                    LogEntry? tail = match is null
                        ? agent.Unverified.FirstOrDefault(e => IsSentMaskedInput(e) && LogView.Text(e, AuditFieldNames.Round) == round && InputDigest(e) == sha)
                        : null;
                    ok = match is not null || tail is not null;
                    unverified = tail is not null;
                    detail = match is not null
                        ? $"matches {LogRef.Of(agent, match)}"
                        : tail is not null
                            ? $"counterpart in the unverified tail of {agent.Actor} ({LogRef.Of(agent, tail)}): no signature covers it yet"
                            : sent.Count > 0
                                ? $"digest differs: {site} logged sending {string.Join(", ", sent.Select(InputDigest))} ({LogRef.Cite(sent.Select(e => LogRef.Of(agent, e)))})"
                                : $"{site} logged no masked input for round {round}";
                }

                CrossCheck.Add(new CrossCheckRow(ok, $"{aggregator.Actor} received", round, site, sha, detail, LogRef.Of(aggregator, received), unverified));
            }
        }

        var roundsByNumber = Rounds.ToLookup(r => r.Round.ToString(CultureInfo.InvariantCulture), StringComparer.Ordinal);
        foreach (LogView agent in agents)
        {
            foreach (LogEntry sent in SentMaskedInputs(agent))
            {
                string round = LogView.Text(sent, AuditFieldNames.Round);
                string sha = InputDigest(sent);
                (LogView Log, LogEntry Entry)? match = receivedByKey.TryGetValue((agent.Actor, round, sha), out (LogView, LogEntry) found) ? found : null;
                (LogView Log, LogEntry Entry)? tail = match is null && receivedUnverifiedByKey.TryGetValue((agent.Actor, round, sha), out (LogView, LogEntry) late) ? late : null;
                if (aggregators.Count > 0 && match is null && tail is null && roundsByNumber[round].ToList() is { Count: > 0 } facts)
                {
                    // The agent logs the send before its upload (so an input that left is always logged): one killed during
                    // the upload logged an input the aggregator never got. A discrepancy only when a log shows the input
                    // reached the aggregator; otherwise a note.
                    List<string> evidence = ReceiptEvidence(agent, sent, round, facts);
                    string detail = evidence.Count > 0
                        ? $"the aggregator did not log receiving this input, but it must have received it: {string.Join("; ", evidence)}"
                        : $"not received: {NotReceivedDetail(agent.Actor, round, facts)}";
                    CrossCheck.Add(new CrossCheckRow(evidence.Count == 0, $"{agent.Actor} sent", round, agent.Actor, sha, detail, LogRef.Of(agent, sent), NotReceived: evidence.Count == 0));
                    if (evidence.Count == 0)
                    {
                        Notes.Add($"{agent.Actor} logged sending its masked input in round {round} ({LogRef.Of(agent, sent)}); the aggregator did not receive it: {NotReceivedDetail(agent.Actor, round, facts)}.");
                    }

                    continue;
                }

                string otherwise = aggregators.Count == 0
                    ? "no aggregator log was given"
                    : match is { } m
                        ? $"the aggregator logged receiving it at {LogRef.Of(m.Log, m.Entry)}"
                        : tail is { } t
                            ? $"counterpart in the unverified tail of {t.Log.Actor} ({LogRef.Of(t.Log, t.Entry)}): no signature covers it yet"
                            : "the aggregator did not log receiving this input (no aggregator log given opened that round)";
                CrossCheck.Add(new CrossCheckRow(match is not null || tail is not null, $"{agent.Actor} sent", round, agent.Actor, sha, otherwise, LogRef.Of(agent, sent), tail is not null));
            }
        }
    }

    /// <summary>
    /// Whether the aggregator's site-level charges cover the sites': a site charges a round's site-level ρ just before it
    /// reveals its unmasking shares (from then on the aggregator can unmask the sum), and the aggregator charges every
    /// round whose unmasking request went out, completed or not. So for each site-level charge of a site in a round whose
    /// masked input from that site the aggregator logged receiving, the aggregator must have charged that round at least
    /// that ρ (less <see cref="RhoTolerance"/>). A charge found only in the aggregator's unverified tail is a warning.
    /// </summary>
    private void CollectChargeCoverage()
    {
        var charges = new Dictionary<string, List<(LogView Log, LogEntry Entry)>>(StringComparer.Ordinal);
        var unverifiedCharges = new Dictionary<string, (LogView Log, LogEntry Entry)>(StringComparer.Ordinal);
        var receipts = new Dictionary<(string Site, string Round), (LogView Log, LogEntry Entry)>();
        foreach (LogView aggregator in Aggregators)
        {
            foreach (LogEntry spent in aggregator.OfType(AuditEvents.PrivacySpent).Where(e => LogView.Text(e, AuditFieldNames.Guarantee) == SiteGuarantee))
            {
                string round = LogView.Text(spent, AuditFieldNames.Round);
                if (!charges.TryGetValue(round, out List<(LogView, LogEntry)>? list))
                {
                    list = [];
                    charges[round] = list;
                }

                list.Add((aggregator, spent));
            }

            foreach (LogEntry spent in aggregator.Unverified.Where(e => e.Type == AuditEvents.PrivacySpent && LogView.Text(e, AuditFieldNames.Guarantee) == SiteGuarantee))
            {
                unverifiedCharges.TryAdd(LogView.Text(spent, AuditFieldNames.Round), (aggregator, spent));
            }

            foreach (LogEntry received in aggregator.OfType(AuditEvents.MaskedInputReceived))
            {
                receipts.TryAdd((LogView.Text(received, AuditFieldNames.Site), LogView.Text(received, AuditFieldNames.Round)), (aggregator, received));
            }
        }

        var roundsByNumber = Rounds.ToLookup(r => r.Round.ToString(CultureInfo.InvariantCulture), StringComparer.Ordinal);
        foreach (LogView agent in Agents)
        {
            foreach (LogEntry charge in agent.OfType(AuditEvents.PrivacyLedger).Where(e => LogView.Text(e, AuditFieldNames.Guarantee) == SiteGuarantee))
            {
                string round = LogView.Text(charge, AuditFieldNames.Round);
                CheckSurvivors(agent, charge, round, roundsByNumber[round]);
                if (!receipts.TryGetValue((agent.Actor, round), out (LogView Log, LogEntry Entry) receipt))
                {
                    continue; // no aggregator log given shows this site's input of that round: nothing to cover
                }

                double? siteRho = RhoOf(charge);
                string what = string.Create(CultureInfo.InvariantCulture,
                    $"round {round}: {agent.Actor} charged site-level ρ {(siteRho is { } r ? r.ToString("G6", CultureInfo.InvariantCulture) : "(not logged)")} ({LogRef.Of(agent, charge)}) for its masked input the aggregator received ({LogRef.Of(receipt.Log, receipt.Entry)})");
                if (charges.TryGetValue(round, out List<(LogView Log, LogEntry Entry)>? federation))
                {
                    // Only a charge with a finite ρ of 0 or more covers anything: a charge without one (or with "NaN",
                    // which Number parses from a string) must not stand in for an unbounded one, or one such line
                    // beside a real charge far below the sites' would switch this check off. CheckValues names such a ρ.
                    List<(LogView Log, LogEntry Entry)> priced = [.. federation.Where(c => RhoOf(c.Entry) is not null)];
                    if (siteRho is not null && priced.Count == 0)
                    {
                        Undercharged.Add(string.Create(CultureInfo.InvariantCulture,
                            $"{what}, but no site-level charge the aggregator logged for round {round} states a finite ρ ({LogRef.Cite(federation.Select(c => LogRef.Of(c.Log, c.Entry)))})"));
                    }
                    else if (siteRho is { } covered)
                    {
                        (LogView Log, LogEntry Entry) largest = priced.MaxBy(c => RhoOf(c.Entry)!.Value);
                        double charged = RhoOf(largest.Entry)!.Value;
                        if (charged < covered * (1 - RhoTolerance))
                        {
                            Undercharged.Add(string.Create(CultureInfo.InvariantCulture,
                                $"{what}, but the aggregator charged the round only ρ {charged:G6} ({LogRef.Of(largest.Log, largest.Entry)})"));
                        }
                    }

                    // The other way round, for a round's own charge (no note: a completed round): ρ falls as the survivors
                    // grow, and a site charges the ρ of the survivors its unmasking
                    // request named. A site that charged clearly less than the aggregator was told of more survivors than
                    // the aggregator's log names: an input in the sum whose receipt the log hides (the site it came from
                    // may have logged nothing after its upload, which the cross-check above would take for a crash).
                    foreach ((LogView Log, LogEntry Entry) own in federation.Where(c => LogView.Text(c.Entry, "note").Length == 0))
                    {
                        if (siteRho is { } seen && LogView.Number(own.Entry, AuditFieldNames.Rho) is { } logged && seen < logged * (1 - RhoTolerance))
                        {
                            Problems.Add(string.Create(CultureInfo.InvariantCulture,
                                $"Round {round}: {agent.Actor} charged site-level ρ {seen:G6} ({LogRef.Of(agent, charge)}), less than the aggregator's ρ {logged:G6} for the round ({LogRef.Of(own.Log, own.Entry)}): the site was told of more survivors than the aggregator's log names, so an input in the sum may be missing from that log."));
                        }
                    }
                }
                else if (unverifiedCharges.TryGetValue(round, out (LogView Log, LogEntry Entry) late))
                {
                    Warnings.Add($"{what}; the aggregator's charge of the round is only in its unverified tail ({LogRef.Of(late.Log, late.Entry)}): no signature covers it yet.");
                }
                else
                {
                    Undercharged.Add($"{what}, but the aggregator logged no site-level charge (privacy.spent) for round {round}");
                }
            }
        }
    }

    /// <summary>
    /// A charge's ρ when it is a finite number of 0 or more; otherwise null (absent, not a number, "NaN", "Infinity" or
    /// negative: <see cref="AuditFields"/> writes only finite numbers, so such a ρ was not written by SecureFed, and
    /// <see cref="CheckValues"/> names it).
    /// </summary>
    private static double? RhoOf(LogEntry entry) =>
        LogView.Number(entry, AuditFieldNames.Rho) is { } rho && double.IsFinite(rho) && rho >= 0 ? rho : null;

    /// <summary>
    /// The survivors a site's site-level charge names (those of the signed unmasking request it answered; agents since
    /// session 46) must be the ones the aggregator logged: its <c>unmask.requested</c> survivors and, for a completed
    /// round, its aggregate's participants. A survivor the aggregator's log leaves out is an input in the sum whose
    /// receipt that log hides (the site it came from, never answered after its upload, logs nothing more in the round,
    /// so the sent-without-receipt row alone reads as a crash); the aggregator writes its own ρ and notes, so those
    /// cannot show it. A charge without the field (an older agent) is left to the ρ checks.
    /// </summary>
    private void CheckSurvivors(LogView agent, LogEntry charge, string round, IEnumerable<RoundFacts> facts)
    {
        List<string> seen = List(charge, "survivors");
        if (seen.Count == 0)
        {
            return;
        }

        var seenSet = seen.ToHashSet(StringComparer.Ordinal);
        foreach (RoundFacts r in facts)
        {
            foreach ((LogEntry? line, IReadOnlyList<string> logged, string what) in new[]
            {
                (r.UnmaskRequested, r.Survivors, "unmasking request's survivors"),
                (r.Aggregate, r.Participants, "aggregate's participants"),
            })
            {
                if (line is not null && !seenSet.SetEquals(logged))
                {
                    Problems.Add(string.Create(CultureInfo.InvariantCulture,
                        $"Round {round}: {agent.Actor} answered an unmasking request naming the survivors [{string.Join(", ", seen)}] ({LogRef.Of(agent, charge)}), but the aggregator's log names [{string.Join(", ", logged)}] as the {what} ({LogRef.Of(r.Aggregator, line)}): an input in the sum may be missing from that log."));
                }
            }
        }
    }

    /// <summary>
    /// What shows that the aggregator received <paramref name="agent"/>'s masked input of <paramref name="round"/> although
    /// it logged no receipt: the round's aggregate names the site among its participants, the unmasking request among its
    /// survivors (whose inputs are in the sum), a survivor revealed shares of the site's self mask (needed only to unmask
    /// an input in the sum), or the site itself went on in the round after the upload (its consistency or unmasking
    /// message, its site-level charge: it gets that far only once the aggregator accepted the upload). Signed lines only.
    /// </summary>
    private static List<string> ReceiptEvidence(LogView agent, LogEntry sent, string round, List<RoundFacts> facts)
    {
        string site = agent.Actor;
        var evidence = new List<string>();
        foreach (RoundFacts r in facts)
        {
            if (r.Aggregate is { } aggregate && r.Participants.Contains(site, StringComparer.Ordinal))
            {
                evidence.Add($"the round's aggregate names {site} among its participants ({LogRef.Of(r.Aggregator, aggregate)})");
            }

            if (r.UnmaskRequested is { } request && r.Survivors.Contains(site, StringComparer.Ordinal))
            {
                evidence.Add($"the round's unmasking request names {site} among the survivors, whose inputs are in the sum ({LogRef.Of(r.Aggregator, request)})");
            }

            if (r.UnmaskResponses.Find(e => List(e, AuditFieldNames.BShareOwners).Contains(site, StringComparer.Ordinal)) is { } response)
            {
                evidence.Add($"a survivor revealed shares of {site}'s self mask, which unmask only an input in the sum ({LogRef.Of(r.Aggregator, response)})");
            }
        }

        if (agent.Entries.FirstOrDefault(e => e.Line > sent.Line && LogView.Text(e, AuditFieldNames.Round) == round && WentOnAfterUpload(e)) is { } later)
        {
            evidence.Add($"{site} went on in the round after its upload ({LogRef.Of(agent, later)}), which it does only once the aggregator accepted the upload");
        }

        return evidence;

        static bool WentOnAfterUpload(LogEntry e) =>
            (e.Type == AuditEvents.MessageSent && LogView.Text(e, AuditFieldNames.MessageType) is "consistency" or "unmask")
            || (e.Type == AuditEvents.PrivacyLedger && LogView.Text(e, AuditFieldNames.Guarantee) == SiteGuarantee);
    }

    /// <summary>How the round went without <paramref name="site"/>'s input, from the aggregator's log: its dropout, the abort, or that it is still open.</summary>
    private static string NotReceivedDetail(string site, string round, List<RoundFacts> facts)
    {
        RoundFacts r = facts[^1];
        string how = r.Dropouts.Find(d => d.Site == site) is { } dropout
            ? $"the aggregator logged {site} as a dropout of round {round} at {dropout.Stage} ({dropout.Source})"
            : r.State == RoundState.Aborted
                ? $"the round was aborted{(r.AbortStage.Length > 0 ? $" at {r.AbortStage}" : string.Empty)} ({r.EndedAt})"
                : r.State == RoundState.Open ? "the round is still open in the aggregator's log" : $"the round ended without {site} ({r.EndedAt})";
        return $"{how}; no log shows the input reached the aggregator (not among the round's survivors or the aggregate's participants, no share of {site}'s self mask revealed, and {site} logged nothing later in the round), as when a site stops during its upload";
    }

    /// <summary>
    /// What a masked-input event (sent or received) identifies the input by: its SHA-256, or for an input uploaded by slice
    /// (protocol version 4, whose receiver never had the whole vector) the list of its slices' SHA-256.
    /// </summary>
    private static string InputDigest(LogEntry entry)
    {
        List<string> slices = List(entry, AuditFieldNames.SlicesSha256);
        return slices.Count > 0 ? "slices:" + string.Join(",", slices) : LogView.Text(entry, AuditFieldNames.Sha256);
    }

    private static IEnumerable<LogEntry> SentMaskedInputs(LogView agent) => agent.Entries.Where(IsSentMaskedInput);

    private static bool IsSentMaskedInput(LogEntry entry) =>
        entry.Type == AuditEvents.MessageSent && LogView.Text(entry, AuditFieldNames.MessageType) == AuditEvents.MaskedInputMessageType;

    /// <summary>
    /// Records impossible content of a log that verified. A log that failed verification already fails the audit, and
    /// lines missing from it (unparsable) would only add false alarms.
    /// </summary>
    private void Impossible(LogView log, string problem)
    {
        if (log.Verification.Ok)
        {
            _impossible.Add(problem);
        }
    }

    /// <summary>
    /// Impossible values on any covered line: a negative count; a round number that is negative, fractional or beyond 2^53
    /// on a line about the logging party's own round (<see cref="OwnRoundEvents"/>); a ρ of a privacy charge that is not a
    /// finite number of 0 or more.
    /// </summary>
    private void CheckValues()
    {
        // A log that failed verification already fails the audit; lines missing from it would only add false alarms.
        foreach (LogView log in Logs.Where(l => l.Verification.Ok))
        {
            int found = 0;
            foreach (LogEntry entry in log.Entries)
            {
                string? problem = null;
                if (OwnRoundEvents.Contains(entry.Type) && LogView.Number(entry, AuditFieldNames.Round) is { } round && (!(round >= 0 && round <= MaxPlausibleRound) || Math.Floor(round) != round))
                {
                    problem = $"{LogRef.Of(log, entry)}: round {LogView.Text(entry, AuditFieldNames.Round)} is not a plausible round number (a whole number from 0 to 2^53).";
                }
                else if (Array.Find(CountFields, f => LogView.Number(entry, f) is { } n && !(n >= 0)) is { } field)
                {
                    problem = $"{LogRef.Of(log, entry)}: {field} {LogView.Text(entry, field)} is not a count (a number of 0 or more).";
                }
                else if (entry.Type is AuditEvents.PrivacySpent or AuditEvents.PrivacyLedger && entry.Fields.TryGetProperty(AuditFieldNames.Rho, out JsonElement rho) && RhoOf(entry) is null)
                {
                    // A ρ that is not a number would otherwise be read as no charge at all by the coverage check.
                    problem = $"{LogRef.Of(log, entry)}: rho {rho.GetRawText()} is not a privacy charge (a finite number of 0 or more).";
                }

                if (problem is not null && found++ < MaxValueProblemsPerLog)
                {
                    _impossible.Add(problem);
                }
            }

            if (found > MaxValueProblemsPerLog)
            {
                _impossible.Add(string.Create(CultureInfo.InvariantCulture, $"{log.Actor}: {found - MaxValueProblemsPerLog} more line(s) with impossible values."));
            }
        }
    }

    private void Judge()
    {
        foreach (LogView log in Logs.Where(l => !l.Verification.Ok))
        {
            int more = log.Verification.Problems.Count - 1;
            Problems.Add(
                $"The log of {log.Actor} ({log.Directory}) failed verification: {log.Verification.FirstProblem?.TrimEnd('.')}{(more > 0 ? $" (and {Plural(more, "more problem")})" : string.Empty)}. Nothing it logged can be trusted, including what this report shows from it.");
        }

        foreach ((string site, List<EpsilonPoint> points) in PatientEpsilon)
        {
            if (points.FirstOrDefault(p => p.OverBudget) is { } over)
            {
                Problems.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{site} spent patient-level ε {over.Epsilon:G4} by round {over.Round}, over its budget of {over.Budget:G4} ({over.Source})."));
            }
        }

        foreach ((string guarantee, SortedDictionary<string, List<EpsilonPoint>> byActor) in OtherEpsilon)
        {
            foreach ((string actor, List<EpsilonPoint> points) in byActor)
            {
                if (points.FirstOrDefault(p => p.OverBudget) is { } over)
                {
                    Problems.Add(string.Create(CultureInfo.InvariantCulture,
                        $"{actor} logged {guarantee}-level ε {over.Epsilon:G4} by round {over.Round}, over the budget of {over.Budget:G4} it names ({over.Source})."));
                }
            }
        }

        Problems.AddRange(_impossible);

        List<CrossCheckRow> late = [.. CrossCheck.Where(r => r.Unverified)];
        if (late.Count > 0)
        {
            string listed = string.Join("; ", late.Take(MaxListedDiscrepancies).Select(r => $"round {r.Round}, {r.Direction} ({r.Source}): {r.Detail}"));
            Warnings.Add(string.Create(CultureInfo.InvariantCulture,
                $"{Plural(late.Count, "masked-input record")} of the cross-check found {(late.Count == 1 ? "its" : "their")} counterpart only in the other log's unverified tail (a process still running, or killed before it signed a checkpoint): not counted as {(late.Count == 1 ? "a discrepancy" : "discrepancies")}, but not confirmed by a signature: {listed}{(late.Count > MaxListedDiscrepancies ? "; …" : string.Empty)}."));
        }

        if (Undercharged.Count > 0)
        {
            string listed = string.Join("; ", Undercharged.Take(MaxListedDiscrepancies));
            Problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"The federation's site-level ledger does not cover {Plural(Undercharged.Count, "site-level charge")} of the sites, so the site-level ε the aggregator reports understates what was spent: {listed}{(Undercharged.Count > MaxListedDiscrepancies ? "; …" : string.Empty)}."));
        }

        List<CrossCheckRow> bad = [.. CrossCheck.Where(r => !r.Ok)];
        if (bad.Count > 0)
        {
            string listed = string.Join("; ", bad.Take(MaxListedDiscrepancies).Select(r => $"round {r.Round}, {r.Direction} ({r.Source}): {r.Detail}"));
            Problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"{bad.Count} masked-input cross-check discrepanc{(bad.Count == 1 ? "y" : "ies")}: {listed}{(bad.Count > MaxListedDiscrepancies ? "; …" : string.Empty)}."));
        }

        if (Aggregators.Count == 0)
        {
            Notes.Add("No aggregator log was given: rounds, dropouts and the receiving side of the cross-check cannot be checked.");
        }

        if (Agents.Count == 0)
        {
            Notes.Add("No agent log was given: patient-level ε is logged by each site, and the sending side of the cross-check cannot be checked.");
        }

        foreach (string site in Sites.Where(s => Agents.All(a => a.Actor != s)))
        {
            Notes.Add($"No log of {site} was given, although a cohort names it.");
        }

        foreach (LogView log in Logs.Where(l => l.Unverified.Count > 0))
        {
            string types = string.Join(", ", log.Unverified.GroupBy(e => e.Type, StringComparer.Ordinal).Select(g => $"{g.Key} ×{g.Count()}"));
            Warnings.Insert(0, string.Create(CultureInfo.InvariantCulture,
                $"UNVERIFIED: {log.Actor} {(log.Unverified.Count == 1 ? $"line {log.Unverified[0].Line} comes" : $"lines {log.Unverified[0].Line}–{log.Unverified[^1].Line} come")} after the newest signed checkpoint: no signature covers them (anyone able to write the file could have appended them), so no figure in this report counts them ({types}). A log that was closed normally ends with a checkpoint; these lines are not yet signed (a running process, a crash, or lines appended)."));
        }

        // A decline does not take a site out of the attempt (PROTOCOL.md §3 "Declines"): one that declined and is still in
        // the aggregate contributed, whatever its decline said.
        foreach (RoundFacts round in Rounds.Where(r => r.Aggregate is not null))
        {
            foreach ((string site, (string reason, LogRef source)) in round.Declined.Where(d => round.Participants.Contains(d.Key, StringComparer.Ordinal)))
            {
                Notes.Add($"{site} declined round {round.Round} ({reason} — {source}) but its masked input is in the aggregate ({LogRef.Of(round.Aggregator, round.Aggregate!)}): it took part.");
            }
        }

        foreach (RoundFacts round in Rounds.Where(r => r.State == RoundState.Open))
        {
            Notes.Add(string.Create(CultureInfo.InvariantCulture, $"Round {round.Round} was opened ({round.OpenedAt}) but neither completed nor aborted in the log."));
        }

        foreach ((string site, List<EpsilonPoint> points) in PatientEpsilon.Where(p => p.Value.All(e => e.Budget is null)))
        {
            Notes.Add($"{site} did not log its patient-level ε budget, so its ε cannot be checked against one.");
        }
    }
}
