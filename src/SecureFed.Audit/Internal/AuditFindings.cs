using System.Globalization;
using System.Text.Json;

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

    /// <summary>Findings that fail the audit, as sentences.</summary>
    public List<string> Problems { get; } = [];

    /// <summary>Findings worth knowing that do not fail the audit.</summary>
    public List<string> Notes { get; } = [];

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
                return $"PASSED: {all}, {Plural(RoundsCompleted, "round")} completed, {RoundsAborted} aborted, {Plural(Dropouts, "dropout")}, 0 cross-check discrepancies, {budget}.";
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

            int other = Problems.Count - FailedLogs - (CrossCheckMismatches > 0 ? 1 : 0) - over.Count;
            if (other > 0)
            {
                reasons.Add($"{Plural(other, "other problem")}");
            }

            return "FAILED: " + string.Join("; ", reasons) + ".";
        }
    }

    /// <summary>"1 log", "2 logs".</summary>
    internal static string Plural(long count, string noun) =>
        string.Create(CultureInfo.InvariantCulture, $"{count} {noun}{(count == 1 ? string.Empty : "s")}");

    public static AuditFindings Compute(IReadOnlyList<string> directories)
    {
        var logs = new List<LogView>();
        foreach (string directory in directories)
        {
            AuditVerification verification = AuditVerifier.VerifyCore(directory, null, null, out IReadOnlyList<LogEntry> entries);
            logs.Add(new LogView(verification.Directory, verification, entries));
        }

        var findings = new AuditFindings(logs);
        findings.CollectRounds();
        findings.CollectSites();
        findings.CollectEpsilon();
        findings.CollectCrossCheck();
        findings.Judge();
        return findings;
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
            foreach (LogEntry entry in log.Entries)
            {
                if (entry.Type == AuditEvents.RoundOpened && LogView.Number(entry, AuditFieldNames.Round) is { } opened)
                {
                    var facts = new RoundFacts { Aggregator = log, Round = (long)opened, Opened = entry, Cohort = List(entry, AuditFieldNames.Cohort) };
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
                            break;
                        case AuditEvents.MaskedInputReceived:
                            facts.MaskedInputs.Add(entry);
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
            foreach (LogEntry entry in log.Entries.Where(e => e.Type is AuditEvents.PrivacySpent or AuditEvents.PrivacyLedger))
            {
                double? round = LogView.Number(entry, AuditFieldNames.Round);
                double? epsilon = LogView.Number(entry, AuditFieldNames.Epsilon);
                if (round is null || epsilon is null)
                {
                    continue;
                }

                var point = new EpsilonPoint((long)round.Value, epsilon.Value, LogView.Number(entry, AuditFieldNames.Delta),
                    LogView.Number(entry, AuditFieldNames.Budget), LogRef.Of(log, entry));
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

    private void CollectCrossCheck()
    {
        List<LogView> aggregators = Aggregators;
        List<LogView> agents = Agents;
        foreach (LogView aggregator in aggregators)
        {
            foreach (LogEntry received in aggregator.OfType(AuditEvents.MaskedInputReceived))
            {
                string round = LogView.Text(received, AuditFieldNames.Round);
                string site = LogView.Text(received, AuditFieldNames.Site);
                string sha = InputDigest(received);
                LogView? agent = agents.FirstOrDefault(a => a.Actor == site);
                string detail;
                bool ok = false;
                if (agent is null)
                {
                    detail = $"no log for site {site} was given";
                }
                else
                {
                    List<LogEntry> sent = [.. SentMaskedInputs(agent).Where(e => LogView.Text(e, AuditFieldNames.Round) == round)];
                    LogEntry? match = sent.FirstOrDefault(e => InputDigest(e) == sha);
                    ok = match is not null;
                    detail = match is not null
                        ? $"matches {LogRef.Of(agent, match)}"
                        : sent.Count > 0
                            ? $"digest differs: {site} logged sending {string.Join(", ", sent.Select(InputDigest))} ({LogRef.Cite(sent.Select(e => LogRef.Of(agent, e)))})"
                            : $"{site} logged no masked input for round {round}";
                }

                CrossCheck.Add(new CrossCheckRow(ok, $"{aggregator.Actor} received", round, site, sha, detail, LogRef.Of(aggregator, received)));
            }
        }

        foreach (LogView agent in agents)
        {
            foreach (LogEntry sent in SentMaskedInputs(agent))
            {
                string round = LogView.Text(sent, AuditFieldNames.Round);
                string sha = InputDigest(sent);
                (LogView Log, LogEntry Entry)? match = aggregators.SelectMany(a => a.OfType(AuditEvents.MaskedInputReceived).Select(e => (a, e)))
                    .Where(p => LogView.Text(p.e, AuditFieldNames.Site) == agent.Actor && LogView.Text(p.e, AuditFieldNames.Round) == round
                                && InputDigest(p.e) == sha)
                    .Select(p => ((LogView, LogEntry)?)p).FirstOrDefault();
                string detail = aggregators.Count == 0
                    ? "no aggregator log was given"
                    : match is { } m
                        ? $"the aggregator logged receiving it at {LogRef.Of(m.Log, m.Entry)}"
                        : "the aggregator did not log receiving this input";
                CrossCheck.Add(new CrossCheckRow(match is not null, $"{agent.Actor} sent", round, agent.Actor, sha, detail, LogRef.Of(agent, sent)));
            }
        }
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

    private static IEnumerable<LogEntry> SentMaskedInputs(LogView agent) =>
        agent.OfType(AuditEvents.MessageSent).Where(e => LogView.Text(e, AuditFieldNames.MessageType) == AuditEvents.MaskedInputMessageType);

    private void Judge()
    {
        foreach (LogView log in Logs.Where(l => !l.Verification.Ok))
        {
            int more = log.Verification.Problems.Count - 1;
            Problems.Add(
                $"The log of {log.Actor} ({log.Directory}) failed verification: {log.Verification.FirstProblem}{(more > 0 ? $" (and {Plural(more, "more problem")})" : string.Empty)}. Nothing it logged can be trusted, including what this report shows from it.");
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

        foreach (LogView log in Logs.Where(l => l.Verification.Ok && l.Verification.UncoveredLines > 0))
        {
            Notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"{log.Actor}: the last {log.Verification.UncoveredLines} line(s) come after the newest signed checkpoint, so no signature covers them yet."));
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
