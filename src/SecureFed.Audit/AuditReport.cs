using System.Globalization;
using System.Net;
using System.Text;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit;

/// <summary>
/// Writes a self-contained HTML report (inline CSS and SVG, no external assets) over one or more audit logs: the
/// verification status of each, rounds, participants and dropouts, what each site sent, epsilon over time, and the
/// cross-check that every masked input the aggregator logged matches a digest its sender logged, and the reverse.
/// Agents' logs are matched to sites by actor, so agents must log under the site id the aggregator uses.
/// </summary>
public static class AuditReport
{
    private static readonly string[] Palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

    /// <summary>Verifies each log directory and writes the report to <paramref name="outputHtmlPath"/>.</summary>
    public static void Write(IReadOnlyList<string> directories, string outputHtmlPath)
    {
        ArgumentNullException.ThrowIfNull(directories);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputHtmlPath);
        if (directories.Count == 0)
        {
            throw new ArgumentException("At least one log directory is needed.", nameof(directories));
        }

        string html = Create(directories).Html;
        string? folder = Path.GetDirectoryName(Path.GetFullPath(outputHtmlPath));
        if (folder is not null)
        {
            Directory.CreateDirectory(folder);
        }

        DurableFile.WriteAllText(outputHtmlPath, html);
    }

    /// <summary>Verifies each log directory and renders the report without writing it.</summary>
    public static AuditReportResult Create(IReadOnlyList<string> directories)
    {
        ArgumentNullException.ThrowIfNull(directories);
        string html = Render(directories, out int mismatches, out List<LogView> logs);
        return new AuditReportResult(html, logs.Count, logs.Count(l => !l.Verification.Ok), mismatches);
    }

    /// <summary>Renders the report; <paramref name="mismatches"/> counts failed cross-checks.</summary>
    internal static string Render(IReadOnlyList<string> directories, out int mismatches) => Render(directories, out mismatches, out _);

    private static string Render(IReadOnlyList<string> directories, out int mismatches, out List<LogView> logs)
    {
        logs = [];
        foreach (string directory in directories)
        {
            AuditVerification verification = AuditVerifier.VerifyCore(directory, null, null, out IReadOnlyList<LogEntry> entries);
            logs.Add(new LogView(verification.Directory, verification, entries));
        }

        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>SecureFed audit report</title>\n<style>\n")
            .Append("body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:80em}\n")
            .Append("table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\n")
            .Append("th{background:#f3f3f3}.ok{color:#17692e;font-weight:600}.bad{color:#b00020;font-weight:600}tr.bad td{background:#fde7ea}\n")
            .Append("code{font-size:.85em;word-break:break-all}.muted{color:#666}svg{background:#fff;border:1px solid #ddd}\n")
            .Append("</style></head><body>\n<h1>SecureFed audit report</h1>\n");

        WriteVerification(html, logs);
        WriteRounds(html, logs);
        WriteSent(html, logs);
        WritePrivacy(html, logs);
        mismatches = WriteCrossCheck(html, logs);
        WriteIncidents(html, logs);
        html.Append("</body></html>\n");
        return html.ToString();
    }

    private static string E(string? text) => WebUtility.HtmlEncode(text ?? string.Empty);

    private static void WriteVerification(StringBuilder html, List<LogView> logs)
    {
        html.Append("<h2>Log verification</h2>\n<table><tr><th>actor</th><th>role</th><th>status</th><th>lines</th><th>checkpoints</th><th>signed lines</th><th>verifier key</th><th>directory</th></tr>\n");
        foreach (LogView log in logs)
        {
            AuditVerification v = log.Verification;
            string status = v.Ok
                ? "<span class=\"ok\">intact</span>" + (v.UncoveredLines > 0 ? string.Create(CultureInfo.InvariantCulture, $" <span class=\"muted\">({v.UncoveredLines} line(s) not yet signed)</span>") : string.Empty)
                : "<span class=\"bad\">FAILED</span>: " + E(v.FirstProblem);
            html.Append(CultureInfo.InvariantCulture,
                $"<tr{(v.Ok ? string.Empty : " class=\"bad\"")}><td>{E(log.Actor)}</td><td>{log.Role}</td><td>{status}</td><td>{v.Lines}</td><td>{v.Checkpoints}</td><td>{v.CoveredLines}</td><td><code>{E(v.VerifierKey)}</code></td><td><code>{E(log.Directory)}</code></td></tr>\n");
        }

        html.Append("</table>\n<p class=\"muted\">Keys are trusted from each log's verifier.key; run <code>securefed audit verify DIR --key KEY</code> to pin the keys you registered.</p>\n");
    }

    private static void WriteRounds(StringBuilder html, List<LogView> logs)
    {
        html.Append("<h2>Rounds</h2>\n");
        List<LogView> aggregators = [.. logs.Where(l => l.Role == "aggregator")];
        if (aggregators.Count == 0)
        {
            html.Append("<p class=\"muted\">No aggregator log was given.</p>\n");
            return;
        }

        html.Append("<table><tr><th>aggregator</th><th>round</th><th>cohort</th><th>threshold</th><th>DP</th><th>masked inputs</th><th>dropouts</th><th>participants</th><th>aggregate sha256</th><th>outcome</th></tr>\n");
        foreach (LogView log in aggregators)
        {
            foreach (LogEntry opened in log.OfType(AuditEvents.RoundOpened))
            {
                string round = LogView.Text(opened, AuditFieldNames.Round);
                List<LogEntry> same = [.. log.Entries.Where(e => LogView.Text(e, AuditFieldNames.Round) == round)];
                string dropouts = string.Join("; ", same.Where(e => e.Type == AuditEvents.Dropout)
                    .Select(e => $"{LogView.Text(e, AuditFieldNames.Stage)}: {LogView.Text(e, AuditFieldNames.Sites)}"));
                LogEntry? aggregate = same.LastOrDefault(e => e.Type == AuditEvents.AggregateProduced);
                LogEntry? aborted = same.LastOrDefault(e => e.Type == AuditEvents.RoundAborted);
                bool completed = same.Any(e => e.Type == AuditEvents.RoundCompleted);
                string outcome = aborted is not null
                    ? $"<span class=\"bad\">aborted at {E(LogView.Text(aborted, AuditFieldNames.Stage))}: {E(LogView.Text(aborted, AuditFieldNames.Reason))}</span>"
                    : completed ? "<span class=\"ok\">completed</span>" : "<span class=\"muted\">open</span>";
                string dp = opened.Fields.TryGetProperty(AuditFieldNames.Dp, out System.Text.Json.JsonElement dpValue) ? dpValue.GetRawText() : string.Empty;
                html.Append(CultureInfo.InvariantCulture,
                    $"<tr><td>{E(log.Actor)}</td><td>{E(round)}</td><td>{E(LogView.Text(opened, AuditFieldNames.Cohort))}</td><td>{E(LogView.Text(opened, AuditFieldNames.Threshold))}</td>" +
                    $"<td><code>{E(dp)}</code></td><td>{same.Count(e => e.Type == AuditEvents.MaskedInputReceived)}</td><td>{E(dropouts)}</td>" +
                    $"<td>{E(aggregate is null ? string.Empty : LogView.Text(aggregate, AuditFieldNames.Participants))}</td>" +
                    $"<td><code>{E(aggregate is null ? string.Empty : LogView.Text(aggregate, AuditFieldNames.Sha256))}</code></td><td>{outcome}</td></tr>\n");
            }
        }

        html.Append("</table>\n");
    }

    private static void WriteSent(StringBuilder html, List<LogView> logs)
    {
        html.Append("<h2>What each site sent</h2>\n");
        List<LogView> agents = [.. logs.Where(l => l.Role == "agent")];
        if (agents.Count == 0)
        {
            html.Append("<p class=\"muted\">No agent log was given.</p>\n");
            return;
        }

        foreach (LogView log in agents)
        {
            List<LogEntry> sent = [.. log.OfType(AuditEvents.MessageSent)];
            long total = (long)sent.Sum(e => LogView.Number(e, AuditFieldNames.Bytes) ?? 0);
            html.Append(CultureInfo.InvariantCulture, $"<h3>{E(log.Actor)}: {sent.Count} message(s), {total} byte(s)</h3>\n")
                .Append("<table><tr><th>line</th><th>time</th><th>round</th><th>message type</th><th>bytes</th><th>sha256</th></tr>\n");
            foreach (LogEntry entry in sent)
            {
                html.Append(CultureInfo.InvariantCulture,
                    $"<tr><td>{entry.Line}</td><td>{E(entry.Timestamp)}</td><td>{E(LogView.Text(entry, AuditFieldNames.Round))}</td><td>{E(LogView.Text(entry, AuditFieldNames.MessageType))}</td>" +
                    $"<td>{E(LogView.Text(entry, AuditFieldNames.Bytes))}</td><td><code>{E(LogView.Text(entry, AuditFieldNames.Sha256))}</code></td></tr>\n");
            }

            html.Append("</table>\n");
        }
    }

    private static void WritePrivacy(StringBuilder html, List<LogView> logs)
    {
        html.Append("<h2>Privacy budget (epsilon over rounds)</h2>\n");
        var series = new SortedDictionary<string, SortedDictionary<string, List<(double Round, double Epsilon, string Delta)>>>(StringComparer.Ordinal);
        foreach (LogView log in logs)
        {
            foreach (LogEntry entry in log.Entries.Where(e => e.Type is AuditEvents.PrivacySpent or AuditEvents.PrivacyLedger))
            {
                double? round = LogView.Number(entry, AuditFieldNames.Round);
                double? epsilon = LogView.Number(entry, AuditFieldNames.Epsilon);
                if (round is null || epsilon is null)
                {
                    continue;
                }

                string guarantee = LogView.Text(entry, AuditFieldNames.Guarantee);
                guarantee = guarantee.Length == 0 ? "(unnamed guarantee)" : guarantee;
                if (!series.TryGetValue(guarantee, out var byActor))
                {
                    byActor = new SortedDictionary<string, List<(double, double, string)>>(StringComparer.Ordinal);
                    series[guarantee] = byActor;
                }

                string name = $"{log.Actor} ({entry.Type})";
                if (!byActor.TryGetValue(name, out var points))
                {
                    points = [];
                    byActor[name] = points;
                }

                points.Add((round.Value, epsilon.Value, LogView.Text(entry, AuditFieldNames.Delta)));
            }
        }

        if (series.Count == 0)
        {
            html.Append("<p class=\"muted\">No privacy.spent or privacy.ledger events were logged.</p>\n");
            return;
        }

        foreach ((string guarantee, var byActor) in series)
        {
            html.Append(CultureInfo.InvariantCulture, $"<h3>{E(guarantee)}</h3>\n");
            AppendChart(html, byActor);
            html.Append("<table><tr><th>series</th><th>round</th><th>epsilon</th><th>delta</th></tr>\n");
            foreach ((string name, var points) in byActor)
            {
                foreach ((double round, double epsilon, string delta) in points)
                {
                    html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(name)}</td><td>{round:G}</td><td>{epsilon:G6}</td><td>{E(delta)}</td></tr>\n");
                }
            }

            html.Append("</table>\n");
        }
    }

    private static void AppendChart(StringBuilder html, SortedDictionary<string, List<(double Round, double Epsilon, string Delta)>> byActor)
    {
        const double Width = 640, Height = 260, Left = 60, Right = 20, Top = 20, Bottom = 40;
        var all = byActor.Values.SelectMany(p => p).ToList();
        double minX = all.Min(p => p.Round), maxX = all.Max(p => p.Round);
        double maxY = Math.Max(all.Max(p => p.Epsilon), 1e-9);
        if (maxX <= minX)
        {
            maxX = minX + 1;
        }

        double X(double round) => Left + ((round - minX) / (maxX - minX) * (Width - Left - Right));
        double Y(double epsilon) => Height - Bottom - (epsilon / maxY * (Height - Top - Bottom));
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height + (16 * byActor.Count)}\" role=\"img\" aria-label=\"epsilon per round\">\n");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{Width - Right}\" y2=\"{Height - Bottom}\" stroke=\"#444\"/>");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Height - Bottom}\" stroke=\"#444\"/>\n");
        for (int i = 0; i <= 4; i++)
        {
            double value = maxY * i / 4;
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{Y(value) + 4:F1}\" font-size=\"11\" text-anchor=\"end\">{value:G3}</text>");
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Y(value):F1}\" x2=\"{Width - Right}\" y2=\"{Y(value):F1}\" stroke=\"#eee\"/>\n");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left}\" y=\"{Height - Bottom + 16}\" font-size=\"11\">round {minX:G}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width - Right}\" y=\"{Height - Bottom + 16}\" font-size=\"11\" text-anchor=\"end\">round {maxX:G}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{(Width / 2):F0}\" y=\"{Height - 8}\" font-size=\"12\" text-anchor=\"middle\">round</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"14\" y=\"{Height / 2:F0}\" font-size=\"12\" transform=\"rotate(-90 14 {Height / 2:F0})\" text-anchor=\"middle\">epsilon</text>\n");
        int index = 0;
        foreach ((string name, var points) in byActor)
        {
            string color = Palette[index % Palette.Length];
            string path = string.Join(' ', points.OrderBy(p => p.Round).Select(p => string.Create(CultureInfo.InvariantCulture, $"{X(p.Round):F1},{Y(p.Epsilon):F1}")));
            svg.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{path}\"/>\n");
            foreach ((double round, double epsilon, _) in points)
            {
                svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{X(round):F1}\" cy=\"{Y(epsilon):F1}\" r=\"3\" fill=\"{color}\"><title>{E(name)}: round {round:G}, epsilon {epsilon:G6}</title></circle>\n");
            }

            double legendY = Height + 4 + (16 * index);
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{Left}\" y=\"{legendY:F0}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{Left + 16}\" y=\"{legendY + 9:F0}\" font-size=\"11\">{E(name)}</text>\n");
            index++;
        }

        svg.Append("</svg>\n");
        html.Append(svg);
    }

    private static int WriteCrossCheck(StringBuilder html, List<LogView> logs)
    {
        html.Append("<h2>Cross-check: masked inputs received vs. sent</h2>\n");
        List<LogView> aggregators = [.. logs.Where(l => l.Role == "aggregator")];
        List<LogView> agents = [.. logs.Where(l => l.Role == "agent")];
        var rows = new List<(bool Ok, string Direction, string Round, string Site, string Sha, string Detail)>();

        foreach (LogView aggregator in aggregators)
        {
            foreach (LogEntry received in aggregator.OfType(AuditEvents.MaskedInputReceived))
            {
                string round = LogView.Text(received, AuditFieldNames.Round);
                string site = LogView.Text(received, AuditFieldNames.Site);
                string sha = LogView.Text(received, AuditFieldNames.Sha256);
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
                    LogEntry? match = sent.FirstOrDefault(e => LogView.Text(e, AuditFieldNames.Sha256) == sha);
                    ok = match is not null;
                    detail = match is not null
                        ? string.Create(CultureInfo.InvariantCulture, $"matches {site} line {match.Line}")
                        : sent.Count > 0
                            ? $"digest differs: {site} logged sending {string.Join(", ", sent.Select(e => LogView.Text(e, AuditFieldNames.Sha256)))}"
                            : $"{site} logged no masked input for round {round}";
                }

                rows.Add((ok, $"{aggregator.Actor} received", round, site, sha, detail));
            }
        }

        foreach (LogView agent in agents)
        {
            foreach (LogEntry sent in SentMaskedInputs(agent))
            {
                string round = LogView.Text(sent, AuditFieldNames.Round);
                string sha = LogView.Text(sent, AuditFieldNames.Sha256);
                LogEntry? match = aggregators.SelectMany(a => a.OfType(AuditEvents.MaskedInputReceived))
                    .FirstOrDefault(e => LogView.Text(e, AuditFieldNames.Site) == agent.Actor && LogView.Text(e, AuditFieldNames.Round) == round
                                         && LogView.Text(e, AuditFieldNames.Sha256) == sha);
                string detail = aggregators.Count == 0
                    ? "no aggregator log was given"
                    : match is not null
                        ? string.Create(CultureInfo.InvariantCulture, $"aggregator logged it at line {match.Line}")
                        : "the aggregator did not log receiving this input";
                rows.Add((match is not null, $"{agent.Actor} sent", round, agent.Actor, sha, detail));
            }
        }

        int bad = rows.Count(r => !r.Ok);
        html.Append(CultureInfo.InvariantCulture,
            $"<p id=\"cross-check-summary\" class=\"{(bad == 0 ? "ok" : "bad")}\">{rows.Count - bad} of {rows.Count} masked-input record(s) match; {bad} mismatch(es).</p>\n");
        if (rows.Count > 0)
        {
            html.Append("<table id=\"cross-check\"><tr><th>record</th><th>round</th><th>site</th><th>sha256</th><th>result</th></tr>\n");
            foreach (var row in rows)
            {
                html.Append(CultureInfo.InvariantCulture,
                    $"<tr class=\"{(row.Ok ? "ok" : "bad")}\"><td>{E(row.Direction)}</td><td>{E(row.Round)}</td><td>{E(row.Site)}</td><td><code>{E(row.Sha)}</code></td>" +
                    $"<td>{(row.Ok ? "match" : "MISMATCH")}: {E(row.Detail)}</td></tr>\n");
            }

            html.Append("</table>\n");
        }

        return bad;
    }

    private static IEnumerable<LogEntry> SentMaskedInputs(LogView agent) =>
        agent.OfType(AuditEvents.MessageSent).Where(e => LogView.Text(e, AuditFieldNames.MessageType) == AuditEvents.MaskedInputMessageType);

    private static void WriteIncidents(StringBuilder html, List<LogView> logs)
    {
        List<(LogView Log, LogEntry Entry)> incidents = [.. logs.SelectMany(l => l.Entries
            .Where(e => e.Type is AuditEvents.Refusal or AuditEvents.Blame or AuditEvents.Error or AuditEvents.RoundAborted or AuditEvents.TornTailQuarantined)
            .Select(e => (l, e)))];
        html.Append("<h2>Refusals, errors and repairs</h2>\n");
        if (incidents.Count == 0)
        {
            html.Append("<p class=\"ok\">None logged.</p>\n");
            return;
        }

        html.Append("<table><tr><th>actor</th><th>line</th><th>time</th><th>event</th><th>fields</th></tr>\n");
        foreach ((LogView log, LogEntry entry) in incidents)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<tr><td>{E(log.Actor)}</td><td>{entry.Line}</td><td>{E(entry.Timestamp)}</td><td>{E(entry.Type)}</td><td><code>{E(entry.Fields.GetRawText())}</code></td></tr>\n");
        }

        html.Append("</table>\n");
    }
}
