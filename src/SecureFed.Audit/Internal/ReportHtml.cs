using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SecureFed.Audit.Internal;

/// <summary>
/// Renders <see cref="AuditFindings"/> as one self-contained HTML page (inline CSS and SVG; no script, no external
/// resource). The first screen holds what an auditor acts on: the verdict, ε per site against its budget, and who took
/// part in each round; the details follow. Every number carries the log line it comes from in a title attribute or a
/// line column.
/// </summary>
internal static class ReportHtml
{
    private const string Style = """
        body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.2em 2em;color:#1d1d1d;max-width:76em;line-height:1.4}
        h1{font-size:1.5em;margin:.2em 0 .5em}h2{font-size:1.2em;margin:1.4em 0 .4em}h3{font-size:1.05em;margin:1em 0 .3em}
        table{border-collapse:collapse;margin:.4em 0 1.2em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
        th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
        code{font-size:.85em;word-break:break-all}.muted{color:#555}
        .verdict{border:2px solid;border-left-width:10px;padding:.6em 1em;margin:0 0 1em}
        .verdict h2{margin:0 0 .3em;font-size:1.25em}
        .verdict.pass{border-color:#17692e;background:#eaf6ec}.verdict.fail{border-color:#b00020;background:#fdecee}
        .facts{display:flex;flex-wrap:wrap;gap:.4em 1.6em;list-style:none;padding:0;margin:.3em 0}
        .facts li{white-space:nowrap}.facts b{font-variant-numeric:tabular-nums}
        ol.problems{color:#8a0018;font-weight:600;margin:.4em 0}ul.notes{margin:.3em 0;font-size:.92em;color:#444}
        .overview{display:flex;flex-wrap:wrap;gap:1em 2em;align-items:flex-start}
        .overview section{min-width:0}.overview h2{margin-top:.2em}.overview .chart{flex:0 1 680px}
        figcaption{font-size:.9em;max-width:680px}caption{text-align:left;font-size:.9em;padding:.2em 0}.matrix caption{caption-side:bottom}
        figure{margin:0}svg{background:#fff;border:1px solid #ddd;max-width:100%;height:auto}
        .matrix td{text-align:center;white-space:nowrap}.matrix th[scope=row]{text-align:left}
        .in{background:#e3f3e6;color:#0f5a25}.drop{background:#fde7ea;color:#8a0018}.declined{background:#fff3d6;color:#6b4b00}
        .idle{color:#777}.scroll{overflow-x:auto}
        .ok{color:#17692e;font-weight:600}.bad{color:#b00020;font-weight:600}tr.bad td{background:#fde7ea}
        details{margin:.2em 0}summary{cursor:pointer}
        dl.fields{display:grid;grid-template-columns:max-content auto;gap:0 .8em;margin:0}dl.fields dt{color:#555}dl.fields dd{margin:0}
        """;

    public static string Render(AuditFindings f, PrivacyAuditSection? privacyAudit = null)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
            .Append("<title>SecureFed audit report: ").Append(f.Passed ? "passed" : "FAILED").Append("</title>\n<style>\n").Append(Style).Append("</style></head><body>\n")
            .Append("<header><h1>SecureFed audit report</h1></header>\n<main>\n");
        Verdict(html, f);
        html.Append("<div class=\"overview\">\n");
        Chart(html, f);
        Matrix(html, f);
        html.Append("</div>\n");
        privacyAudit?.Append(html, f);
        html.Append("<h2 id=\"details\">Details</h2>\n<p class=\"muted\">Hover a number to see the log line it comes from (file <code>audit.jsonl</code> of the named actor; the line number is its <code>seq</code>).</p>\n");
        Logs(html, f);
        Rounds(html, f);
        Evaluation(html, f);
        Parameters(html, f);
        Privacy(html, f);
        Messages(html, f);
        CrossCheck(html, f);
        Incidents(html, f);
        html.Append("</main></body></html>\n");
        return html.ToString();
    }

    private static string E(string? text) => Html.Encode(text);

    private static string T(string? title) => title is null ? string.Empty : $" title=\"{E(title)}\"";

    /// <summary>A number for reading: 4 significant digits, large ones in full with separators, no "E+" notation.</summary>
    internal static string N(double value) =>
        Math.Abs(value) is >= 1e4 and < 1e15
            ? value.ToString("N0", CultureInfo.InvariantCulture)
            : value.ToString("G4", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);

    private static string Stage(string stage) => stage.Replace('_', ' ');

    private static void Verdict(StringBuilder html, AuditFindings f)
    {
        html.Append(CultureInfo.InvariantCulture, $"<section id=\"verdict\" class=\"verdict {(f.Passed ? "pass" : "fail")}\" aria-labelledby=\"verdict-heading\">\n");
        html.Append(CultureInfo.InvariantCulture, $"<h2 id=\"verdict-heading\">Verdict: {(f.Passed ? "PASSED" : "FAILED")}</h2>\n<p id=\"verdict-text\"><strong>{E(f.Headline[(f.Headline.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim())}</strong></p>\n");
        if (f.Problems.Count > 0)
        {
            html.Append("<ol class=\"problems\" id=\"problems\">\n");
            foreach (string problem in f.Problems)
            {
                html.Append("<li>").Append(E(problem)).Append("</li>\n");
            }

            html.Append("</ol>\n");
        }

        int intact = f.Logs.Count - f.FailedLogs;
        string logLines = string.Join("; ", f.Logs.Select(l => string.Create(CultureInfo.InvariantCulture,
            $"{l.Actor}: {l.Verification.Lines} line(s), {l.Verification.Checkpoints} checkpoint(s) — {(l.Verification.Ok ? "intact" : "FAILED")}")));
        string completed = LogRef.Cite(f.Rounds.Where(r => r.State == RoundState.Completed).Select(r => r.EndedAt!.Value));
        string aborted = LogRef.Cite(f.Rounds.Where(r => r.State == RoundState.Aborted).Select(r => r.EndedAt!.Value));
        string dropouts = string.Join("; ", f.Rounds.SelectMany(r => r.Dropouts.Select(d => string.Create(CultureInfo.InvariantCulture, $"round {r.Round}: {d.Site} at {Stage(d.Stage)} ({d.Source})"))));
        html.Append("<ul class=\"facts\">\n")
            .Append(CultureInfo.InvariantCulture, $"<li{T(logLines)}>Logs intact: <b class=\"{(f.FailedLogs == 0 ? "ok" : "bad")}\">{intact} of {f.Logs.Count}</b></li>\n")
            .Append(CultureInfo.InvariantCulture, $"<li>Rounds: <b{T("completed: " + completed)}>{f.RoundsCompleted} completed</b>, <b{T("aborted: " + aborted)} class=\"{(f.RoundsAborted == 0 ? string.Empty : "bad")}\">{f.RoundsAborted} aborted</b></li>\n")
            .Append(CultureInfo.InvariantCulture, $"<li{T(dropouts.Length == 0 ? "no dropout event logged" : dropouts)}>Dropouts: <b>{f.Dropouts}</b></li>\n")
            .Append(CultureInfo.InvariantCulture, $"<li{T($"{f.CrossCheck.Count} masked-input record(s) checked; see the cross-check below")}>Cross-check discrepancies: <b class=\"{(f.CrossCheckMismatches == 0 ? "ok" : "bad")}\">{f.CrossCheckMismatches}</b></li>\n");
        if (f.PatientEpsilon.Count > 0)
        {
            (string site, EpsilonPoint point) = f.PatientEpsilon.Select(p => (p.Key, Point: p.Value.MaxBy(e => e.Budget is { } b && b > 0 ? e.Epsilon / b : e.Epsilon)!))
                .MaxBy(p => p.Point.Budget is { } b && b > 0 ? p.Point.Epsilon / b : p.Point.Epsilon);
            string against = point.Budget is { } budget ? $" of budget {N(budget)}" : " (no budget logged)";
            html.Append(CultureInfo.InvariantCulture,
                $"<li{T(point.Source.ToString())}>Highest patient-level ε: <b class=\"{(point.OverBudget ? "bad" : "ok")}\">{N(point.Epsilon)}{against}</b> ({E(site)}, round {point.Round})</li>\n");
        }

        html.Append("</ul>\n");
        if (f.Warnings.Count > 0)
        {
            html.Append("<ol class=\"problems warnings\" id=\"warnings\" aria-label=\"warnings\">\n");
            foreach (string warning in f.Warnings)
            {
                html.Append("<li>").Append(E(warning)).Append("</li>\n");
            }

            html.Append("</ol>\n");
        }

        if (f.Notes.Count > 0)
        {
            html.Append("<ul class=\"notes\" aria-label=\"notes\">\n");
            foreach (string note in f.Notes)
            {
                html.Append("<li>").Append(E(note)).Append("</li>\n");
            }

            html.Append("</ul>\n");
        }

        html.Append("</section>\n");
    }

    private static void Chart(StringBuilder html, AuditFindings f)
    {
        html.Append("<section class=\"chart\" aria-labelledby=\"epsilon-heading\"><h2 id=\"epsilon-heading\">Patient-level ε per site against its budget</h2>\n");
        if (f.PatientEpsilon.Count == 0)
        {
            html.Append("<p class=\"muted\" id=\"epsilon-chart-missing\">No site logged patient-level ε (privacy.ledger, guarantee \"record\"): give the sites' logs.</p></section>\n");
            return;
        }

        html.Append("<figure>\n");
        EpsilonChart.Append(html, f.PatientEpsilon, f.Logs.Where(l => !l.Verification.Ok).Select(l => l.Actor).ToHashSet(StringComparer.Ordinal));
        html.Append("\n<figcaption class=\"muted\">Cumulative DP-SGD ε (δ as logged) after each round, from each site's own log; dashed: budget. Values per round are under Details.</figcaption></figure></section>\n");
    }

    private static void Matrix(StringBuilder html, AuditFindings f)
    {
        html.Append("<section aria-labelledby=\"participation-heading\"><h2 id=\"participation-heading\">Who took part</h2>\n");
        if (f.Rounds.Count == 0)
        {
            html.Append("<p class=\"muted\">No round was logged (the aggregator's log names the rounds).</p></section>\n");
            return;
        }

        bool severalAggregators = f.Rounds.Select(r => r.Aggregator.Actor).Distinct().Count() > 1;
        html.Append("<div class=\"scroll\"><table class=\"matrix\" id=\"participation\"><caption class=\"muted\">✓ in the aggregate · ✗ dropped (stage) · declined · – not in the cohort</caption>\n<thead><tr><th scope=\"col\">site</th>");
        foreach (RoundFacts round in f.Rounds)
        {
            string label = severalAggregators ? $"{round.Aggregator.Actor} round {round.Round}" : $"round {round.Round}";
            html.Append(CultureInfo.InvariantCulture, $"<th scope=\"col\"{T(round.OpenedAt.ToString())}>{E(label)}</th>");
        }

        html.Append("</tr></thead>\n<tbody>\n");
        foreach (string site in f.Sites)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><th scope=\"row\">{E(site)}</th>");
            foreach (RoundFacts round in f.Rounds)
            {
                (string css, string text, string title) = Cell(round, site);
                html.Append(CultureInfo.InvariantCulture, $"<td class=\"{css}\"{T(title)}>{E(text)}</td>");
            }

            html.Append("</tr>\n");
        }

        html.Append("<tr><th scope=\"row\">outcome</th>");
        foreach (RoundFacts round in f.Rounds)
        {
            (string css, string text) = round.State switch
            {
                RoundState.Completed => ("ok", "completed"),
                RoundState.Aborted => ("bad", "aborted"),
                _ => ("idle", "open"),
            };
            string title = round.EndedAt is { } at
                ? (round.State == RoundState.Aborted ? $"aborted at {Stage(round.AbortStage)}: {round.AbortReason} — {at}" : at.ToString())
                : $"opened at {round.OpenedAt}; no end logged";
            html.Append(CultureInfo.InvariantCulture, $"<td class=\"{css}\"{T(title)}>{text}</td>");
        }

        html.Append("</tr>\n</tbody></table></div></section>\n");
    }

    private static (string Css, string Text, string Title) Cell(RoundFacts round, string site)
    {
        if (!round.Cohort.Contains(site, StringComparer.Ordinal))
        {
            return ("idle", "–", $"not in the cohort of round {round.Round} ({round.OpenedAt})");
        }

        // The aggregate first: a site whose masked input is in the sum took part, whatever it declared or missed later (a
        // decline does not take a site out of the attempt, PROTOCOL.md §3 "Declines"; a site that drops after its masked
        // input was taken is still in the sum). The verdict lists a declined contributor as a note (AuditFindings.Judge).
        bool declinedAt = round.Declined.TryGetValue(site, out (string Reason, LogRef Source) declined);
        SiteDropout? dropout = round.Dropouts.FirstOrDefault(d => d.Site == site);
        if (round.Aggregate is not null && round.Participants.Contains(site, StringComparer.Ordinal))
        {
            string also = (declinedAt ? $"; it also declined the round: {declined.Reason} — {declined.Source}" : string.Empty)
                + (dropout is not null ? $"; it was logged as dropped at {Stage(dropout.Stage)} after its masked input was taken — {dropout.Source}" : string.Empty);
            return ("in", declinedAt ? "✓ declined" : "✓", $"{site} is a participant of the aggregate of round {round.Round} — {LogRef.Of(round.Aggregator, round.Aggregate)}{also}");
        }

        if (declinedAt)
        {
            return ("declined", "declined", $"{site} declined round {round.Round}: {declined.Reason} — {declined.Source}");
        }

        if (dropout is not null)
        {
            return ("drop", $"✗ {Stage(dropout.Stage)}", $"{site} dropped at {Stage(dropout.Stage)} in round {round.Round} — {dropout.Source}");
        }

        return round.State == RoundState.Aborted
            ? ("idle", "aborted", $"in the cohort; the round was aborted at {Stage(round.AbortStage)} — {round.EndedAt}")
            : ("idle", "·", $"in the cohort of round {round.Round} ({round.OpenedAt}); no aggregate names it");
    }

    private static void Logs(StringBuilder html, AuditFindings f)
    {
        html.Append("<h3 id=\"logs\">Log verification</h3>\n<table><thead><tr><th scope=\"col\">actor</th><th scope=\"col\">role</th><th scope=\"col\">status</th><th scope=\"col\">lines</th><th scope=\"col\">signed checkpoints</th><th scope=\"col\">lines under signature</th><th scope=\"col\">verifier key</th><th scope=\"col\">directory</th></tr></thead><tbody>\n");
        foreach (LogView log in f.Logs)
        {
            AuditVerification v = log.Verification;
            string status = v.Ok
                ? "<span class=\"ok\">intact</span>" + (v.UncoveredLines > 0 ? string.Create(CultureInfo.InvariantCulture, $" <span class=\"muted\">({v.UncoveredLines} line(s) not yet signed)</span>") : string.Empty)
                : "<span class=\"bad\">FAILED</span>: " + E(string.Join(" ", v.Problems));
            html.Append(CultureInfo.InvariantCulture,
                $"<tr{(v.Ok ? string.Empty : " class=\"bad\"")}><td>{E(log.Actor)}</td><td>{log.Role}</td><td>{status}</td><td class=\"num\">{v.Lines}</td><td class=\"num\">{v.Checkpoints}</td><td class=\"num\">{v.CoveredLines}</td><td><code>{E(v.VerifierKey)}</code></td><td><code>{E(log.Directory)}</code></td></tr>\n");
        }

        html.Append("</tbody></table>\n<p class=\"muted\">Keys are trusted from each log's verifier.key; run <code>securefed audit verify DIR --key KEY</code> to pin the keys you registered.</p>\n");
    }

    private static void Rounds(StringBuilder html, AuditFindings f)
    {
        html.Append("<h3 id=\"rounds\">Rounds</h3>\n");
        if (f.Rounds.Count == 0)
        {
            html.Append("<p class=\"muted\">No aggregator log with rounds was given.</p>\n");
            return;
        }

        html.Append("<table><thead><tr><th scope=\"col\">round</th><th scope=\"col\">outcome</th><th scope=\"col\">cohort</th><th scope=\"col\">threshold</th><th scope=\"col\">masked inputs received</th><th scope=\"col\">dropouts</th><th scope=\"col\">in the aggregate</th><th scope=\"col\">model version</th><th scope=\"col\">aggregate SHA-256</th><th scope=\"col\">lines</th></tr></thead><tbody>\n");
        foreach (RoundFacts r in f.Rounds)
        {
            string outcome = r.State switch
            {
                RoundState.Completed => "<span class=\"ok\">completed</span>",
                RoundState.Aborted => $"<span class=\"bad\">aborted at {E(Stage(r.AbortStage))}</span>: {E(r.AbortReason)}",
                _ => "<span class=\"muted\">open</span>",
            };
            string dropouts = string.Join("; ", r.Dropouts.Select(d => $"{d.Site} at {Stage(d.Stage)}"));
            string version = r.Aggregate is null ? string.Empty : LogView.Text(r.Aggregate, AuditFieldNames.ModelVersion);
            string sha = r.Aggregate is null ? string.Empty : LogView.Text(r.Aggregate, AuditFieldNames.Sha256);
            string aggregateAt = r.Aggregate is null ? string.Empty : LogRef.Of(r.Aggregator, r.Aggregate).ToString();
            string lines = LogRef.Cite(new[] { r.OpenedAt }.Concat(r.Aggregate is null ? [] : [LogRef.Of(r.Aggregator, r.Aggregate)]).Concat(r.EndedAt is { } e ? [e] : []));
            html.Append(CultureInfo.InvariantCulture,
                $"<tr><td class=\"num\">{r.Round}</td><td{T(r.EndedAt?.ToString())}>{outcome}</td><td{T(r.OpenedAt.ToString())}>{E(string.Join(", ", r.Cohort))}</td>" +
                $"<td class=\"num\"{T(r.OpenedAt.ToString())}>{E(LogView.Text(r.Opened, AuditFieldNames.Threshold))}</td>" +
                $"<td class=\"num\"{T(LogRef.Cite(r.MaskedInputs.Select(m => LogRef.Of(r.Aggregator, m))))}>{r.MaskedInputs.Count}</td>" +
                $"<td{T(LogRef.Cite(r.Dropouts.Select(d => d.Source)))}>{E(dropouts)}</td><td{T(aggregateAt)}>{E(string.Join(", ", r.Participants))}</td>" +
                $"<td class=\"num\"{T(aggregateAt)}>{E(version)}</td><td><code>{E(sha)}</code></td><td class=\"muted\">{E(lines)}</td></tr>\n");
        }

        html.Append("</tbody></table>\n");
    }

    /// <summary>
    /// Federated evaluation: the federation's F1 of each round's starting model, decoded by the aggregator from the
    /// secure sum of the sites' dev counts (aggregate information; no site's own score is in any log but its own).
    /// </summary>
    private static void Evaluation(StringBuilder html, AuditFindings f)
    {
        RoundFacts[] scored = [.. f.Rounds.Where(r => r.Evaluation is not null)];
        if (scored.Length == 0)
        {
            return;
        }

        string[] types = [.. scored.SelectMany(r => r.Evaluation!.Fields.TryGetProperty("per_type", out JsonElement t) && t.ValueKind == JsonValueKind.Object
            ? t.EnumerateObject().Select(p => p.Name) : []).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        html.Append("<h3 id=\"federated-evaluation\">Federated evaluation</h3>\n<p class=\"muted\">Each site scored the model a round started from on its own dev data; the aggregator saw only the sum of the sites' true-positive, false-positive and false-negative counts (secure aggregation), never one site's score. The counts carry no differential-privacy noise.</p>\n");
        html.Append("<table><thead><tr><th scope=\"col\">round</th><th scope=\"col\">model version scored</th><th scope=\"col\">sites that scored</th><th scope=\"col\">precision</th><th scope=\"col\">recall</th><th scope=\"col\">F1</th>");
        foreach (string type in types)
        {
            html.Append(CultureInfo.InvariantCulture, $"<th scope=\"col\">F1 {E(type)}</th>");
        }

        html.Append("<th scope=\"col\">line</th></tr></thead><tbody>\n");
        foreach (RoundFacts r in scored)
        {
            LogEntry e = r.Evaluation!;
            string at = LogRef.Of(r.Aggregator, e).ToString();
            html.Append(CultureInfo.InvariantCulture, $"<tr><td class=\"num\">{r.Round}</td><td class=\"num\">{E(LogView.Text(e, "model_version"))}</td>");
            string withheld = LogView.Text(e, "withheld");
            if (withheld.Length > 0)
            {
                html.Append(CultureInfo.InvariantCulture, $"<td colspan=\"{4 + types.Length}\"{T(at)}>withheld: {E(withheld)}</td>");
            }
            else
            {
                html.Append(CultureInfo.InvariantCulture, $"<td class=\"num\"{T(at)}>{E(LogView.Text(e, "evaluators"))}</td><td class=\"num\"{T(at)}>{Score(LogView.Number(e, "precision"))}</td><td class=\"num\"{T(at)}>{Score(LogView.Number(e, "recall"))}</td><td class=\"num\"{T(at)}><strong>{Score(LogView.Number(e, "f1"))}</strong></td>");
                foreach (string type in types)
                {
                    double? typed = e.Fields.TryGetProperty("per_type", out JsonElement t) && t.ValueKind == JsonValueKind.Object && t.TryGetProperty(type, out JsonElement c)
                        && c.ValueKind == JsonValueKind.Object && c.TryGetProperty("f1", out JsonElement v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
                    html.Append(CultureInfo.InvariantCulture, $"<td class=\"num\"{T(at)}>{Score(typed)}</td>");
                }
            }

            html.Append(CultureInfo.InvariantCulture, $"<td class=\"muted\">{E(at)}</td></tr>\n");
        }

        html.Append("</tbody></table>\n");

        static string Score(double? value) => value is double v ? v.ToString("F3", CultureInfo.InvariantCulture) : "–";
    }

    private static void Parameters(StringBuilder html, AuditFindings f)
    {
        if (f.Rounds.Count == 0)
        {
            return;
        }

        // Parameter path -> values per round, in first-seen order.
        var values = new List<(string Path, List<(RoundFacts Round, string Value)> PerRound)>();
        foreach (RoundFacts round in f.Rounds)
        {
            foreach ((string path, string value) in Flatten(round.Opened.Fields, string.Empty))
            {
                if (ParameterInfo.PerRound.Contains(path))
                {
                    continue;
                }

                int index = values.FindIndex(v => v.Path == path);
                if (index < 0)
                {
                    values.Add((path, []));
                    index = values.Count - 1;
                }

                values[index].PerRound.Add((round, value));
            }
        }

        html.Append("<h3 id=\"parameters\">Round parameters</h3>\n<table><thead><tr><th scope=\"col\">parameter</th><th scope=\"col\">value</th><th scope=\"col\">unit</th><th scope=\"col\">meaning</th><th scope=\"col\">logged as</th></tr></thead><tbody>\n");
        foreach ((string path, List<(RoundFacts Round, string Value)> perRound) in values)
        {
            ParameterInfo info = ParameterInfo.For(path);
            List<IGrouping<string, (RoundFacts Round, string Value)>> distinct = [.. perRound.GroupBy(p => p.Value, StringComparer.Ordinal)];
            string cell = distinct.Count == 1 && perRound.Count == f.Rounds.Count
                ? $"<span{T(LogRef.Cite(perRound.Select(p => p.Round.OpenedAt)))}>{E(distinct[0].Key)}</span>" + (f.Rounds.Count > 1 ? " <span class=\"muted\">(every round)</span>" : string.Empty)
                : string.Join("<br>", distinct.Select(g => $"<span{T(LogRef.Cite(g.Select(p => p.Round.OpenedAt)))}>{E(g.Key)}</span> <span class=\"muted\">(round {string.Join(", ", g.Select(p => p.Round.Round))})</span>"));
            html.Append(CultureInfo.InvariantCulture,
                $"<tr><th scope=\"row\">{E(info.Label)}</th><td class=\"num\">{cell}</td><td>{E(info.Unit)}</td><td class=\"muted\">{E(info.Meaning)}</td><td><code>{E(path)}</code></td></tr>\n");
        }

        html.Append("</tbody></table>\n");
    }

    private static IEnumerable<(string Path, string Value)> Flatten(JsonElement fields, string prefix)
    {
        foreach (JsonProperty property in fields.EnumerateObject())
        {
            string path = prefix + property.Name;
            if (property.Value.ValueKind == JsonValueKind.Object)
            {
                foreach ((string Path, string Value) inner in Flatten(property.Value, path + "."))
                {
                    yield return inner;
                }
            }
            else
            {
                yield return (path, Display(property.Value));
            }
        }
    }

    private static string Display(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString()!,
        JsonValueKind.Number => value.TryGetInt64(out long whole) ? whole.ToString(CultureInfo.InvariantCulture) : value.GetDouble().ToString("G6", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal),
        JsonValueKind.Array => string.Join(", ", value.EnumerateArray().Select(Display)),
        JsonValueKind.Null => string.Empty,
        _ => value.GetRawText(),
    };

    private static void Privacy(StringBuilder html, AuditFindings f)
    {
        html.Append("<h3 id=\"privacy\">Privacy budget per round</h3>\n");
        if (f.PatientEpsilon.Count > 0)
        {
            html.Append("<table id=\"patient-epsilon\"><caption class=\"muted\">Patient-level (DP-SGD) ε, cumulative, as each site logged it</caption><thead><tr><th scope=\"col\">site</th><th scope=\"col\">round</th><th scope=\"col\">ε</th><th scope=\"col\">budget</th><th scope=\"col\">left</th><th scope=\"col\">δ</th><th scope=\"col\">log line</th></tr></thead><tbody>\n");
            foreach ((string site, List<EpsilonPoint> points) in f.PatientEpsilon)
            {
                foreach (EpsilonPoint p in points)
                {
                    Row(html, site, p);
                }
            }

            html.Append("</tbody></table>\n");
        }

        foreach ((string guarantee, SortedDictionary<string, List<EpsilonPoint>> byActor) in f.OtherEpsilon)
        {
            string caption = guarantee == AuditFindings.SiteGuarantee
                ? "Site-level ε (a whole hospital's data, from the distributed noise of the sum). With a handful of sites this ε is very large, i.e. no meaningful guarantee for a whole hospital; the guarantee that matters for patients is the patient-level ε above."
                : $"ε of guarantee \"{guarantee}\"";
            html.Append(CultureInfo.InvariantCulture, $"<table><caption class=\"muted\">{E(caption)}</caption><thead><tr><th scope=\"col\">logged by</th><th scope=\"col\">round</th><th scope=\"col\">ε</th><th scope=\"col\">budget</th><th scope=\"col\">left</th><th scope=\"col\">δ</th><th scope=\"col\">log line</th></tr></thead><tbody>\n");
            foreach ((string actor, List<EpsilonPoint> points) in byActor)
            {
                foreach (EpsilonPoint p in points)
                {
                    Row(html, actor, p);
                }
            }

            html.Append("</tbody></table>\n");
        }

        if (f.PatientEpsilon.Count == 0 && f.OtherEpsilon.Count == 0)
        {
            html.Append("<p class=\"muted\">No privacy.spent or privacy.ledger events were logged.</p>\n");
        }

        static void Row(StringBuilder html, string actor, EpsilonPoint p)
        {
            string budget = p.Budget is { } b ? N(b) : "not logged";
            string left = p.Budget is { } c ? N(c - p.Epsilon) : string.Empty;
            html.Append(CultureInfo.InvariantCulture,
                $"<tr{(p.OverBudget ? " class=\"bad\"" : string.Empty)}><td>{E(actor)}</td><td class=\"num\">{p.Round}</td><td class=\"num\"{T(p.Source.ToString())}>{N(p.Epsilon)}</td><td class=\"num\">{budget}</td>" +
                $"<td class=\"num\">{left}{(p.OverBudget ? " OVER BUDGET" : string.Empty)}</td><td class=\"num\">{(p.Delta is { } d ? N(d) : string.Empty)}</td><td class=\"muted\">{E(p.Source.ToString())}</td></tr>\n");
        }
    }

    private static void Messages(StringBuilder html, AuditFindings f)
    {
        html.Append("<h3 id=\"messages\">What each site sent</h3>\n");
        List<LogView> agents = f.Agents;
        if (agents.Count == 0)
        {
            html.Append("<p class=\"muted\">No agent log was given.</p>\n");
            return;
        }

        foreach (LogView log in agents)
        {
            List<LogEntry> sent = [.. log.OfType(AuditEvents.MessageSent)];
            long total = (long)sent.Sum(e => LogView.Number(e, AuditFieldNames.Bytes) ?? 0);
            html.Append(CultureInfo.InvariantCulture, $"<h4>{E(log.Actor)}: {sent.Count} message(s), {total:N0} bytes</h4>\n");
            foreach (IGrouping<string, LogEntry> round in sent.GroupBy(e => LogView.Text(e, AuditFieldNames.Round)))
            {
                long bytes = (long)round.Sum(e => LogView.Number(e, AuditFieldNames.Bytes) ?? 0);
                string types = string.Join(", ", round.Select(e => LogView.Text(e, AuditFieldNames.MessageType)));
                html.Append(CultureInfo.InvariantCulture,
                    $"<details><summary>Round {E(round.Key)}: {round.Count()} message(s), {bytes:N0} bytes <span class=\"muted\">({E(types)})</span></summary>\n")
                    .Append("<table><thead><tr><th scope=\"col\">line</th><th scope=\"col\">time (UTC)</th><th scope=\"col\">message type</th><th scope=\"col\">bytes</th><th scope=\"col\">SHA-256 of the bytes sent</th></tr></thead><tbody>\n");
                foreach (LogEntry entry in round)
                {
                    html.Append(CultureInfo.InvariantCulture,
                        $"<tr><td class=\"num\">{entry.Line}</td><td>{E(entry.Timestamp)}</td><td>{E(LogView.Text(entry, AuditFieldNames.MessageType))}</td>" +
                        $"<td class=\"num\">{(LogView.Number(entry, AuditFieldNames.Bytes) is { } b ? ((long)b).ToString("N0", CultureInfo.InvariantCulture) : string.Empty)}</td><td><code>{E(LogView.Text(entry, AuditFieldNames.Sha256))}</code></td></tr>\n");
                }

                html.Append("</tbody></table></details>\n");
            }
        }
    }

    private static void CrossCheck(StringBuilder html, AuditFindings f)
    {
        html.Append("<h3 id=\"cross-check-heading\">Cross-check: masked inputs received vs. sent</h3>\n");
        int bad = f.CrossCheckMismatches;
        int late = f.CrossCheck.Count(r => r.Unverified);
        int notReceived = f.CrossCheck.Count(r => r.NotReceived);
        html.Append(CultureInfo.InvariantCulture,
            $"<p id=\"cross-check-summary\" class=\"{(bad == 0 ? "ok" : "bad")}\">{f.CrossCheck.Count - bad - notReceived} of {f.CrossCheck.Count} masked-input record(s) match{(late > 0 ? $" ({late} only against lines no signature covers yet)" : string.Empty)}; {(notReceived > 0 ? $"{notReceived} sent but not received (the site stopped during its upload: no log shows the input reached the aggregator); " : string.Empty)}{bad} mismatch(es).</p>\n");
        if (f.CrossCheck.Count == 0)
        {
            return;
        }

        html.Append(CultureInfo.InvariantCulture, $"<details{(bad > 0 ? " open" : string.Empty)}><summary>All {f.CrossCheck.Count} record(s)</summary>\n")
            .Append("<table id=\"cross-check\"><thead><tr><th scope=\"col\">record</th><th scope=\"col\">round</th><th scope=\"col\">site</th><th scope=\"col\">SHA-256</th><th scope=\"col\">result</th><th scope=\"col\">log line</th></tr></thead><tbody>\n");
        foreach (CrossCheckRow row in f.CrossCheck)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<tr class=\"{(row.NotReceived ? "note" : row.Ok ? "ok" : "bad")}\"><td>{E(row.Direction)}</td><td class=\"num\">{E(row.Round)}</td><td>{E(row.Site)}</td><td><code>{E(row.Sha256)}</code></td>" +
                $"<td>{(row.Unverified ? "unverified: " : row.NotReceived ? string.Empty : row.Ok ? "match: " : "MISMATCH: ")}{E(row.Detail)}</td><td class=\"muted\">{E(row.Source.ToString())}</td></tr>\n");
        }

        html.Append("</tbody></table></details>\n");
    }

    private static void Incidents(StringBuilder html, AuditFindings f)
    {
        List<(LogView Log, LogEntry Entry)> incidents = [.. f.Logs.SelectMany(l => l.Entries
            .Where(e => e.Type is AuditEvents.Refusal or AuditEvents.Blame or AuditEvents.OutOfBoundSearch or AuditEvents.UnrebuiltSecretSearch or AuditEvents.EnvelopeSearch or AuditEvents.ShareComplaint or AuditEvents.SearchHeldOut or AuditEvents.SearchEnded or AuditEvents.Error or AuditEvents.RoundAborted or AuditEvents.TornTailQuarantined
                        or AuditEvents.PrivacyLedgerRepaired)
            .Select(e => (l, e)))];
        html.Append("<h3 id=\"incidents\">Refusals, errors and repairs</h3>\n");
        if (incidents.Count == 0)
        {
            html.Append("<p class=\"ok\">None logged.</p>\n");
            return;
        }

        html.Append("<table><thead><tr><th scope=\"col\">actor</th><th scope=\"col\">line</th><th scope=\"col\">time (UTC)</th><th scope=\"col\">event</th><th scope=\"col\">fields</th></tr></thead><tbody>\n");
        foreach ((LogView log, LogEntry entry) in incidents)
        {
            html.Append(CultureInfo.InvariantCulture,
                $"<tr><td>{E(log.Actor)}</td><td class=\"num\">{entry.Line}</td><td>{E(entry.Timestamp)}</td><td>{E(entry.Type)}</td><td><dl class=\"fields\">");
            foreach ((string path, string value) in Flatten(entry.Fields, string.Empty))
            {
                html.Append("<dt>").Append(E(path)).Append("</dt><dd>").Append(E(value)).Append("</dd>");
            }

            html.Append("</dl></td></tr>\n");
        }

        html.Append("</tbody></table>\n");
    }
}
