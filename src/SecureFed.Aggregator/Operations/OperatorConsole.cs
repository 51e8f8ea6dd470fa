using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Options;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Protocol;

namespace SecureFed.Aggregator.Operations;

/// <summary>
/// Renders the operator console: a server-rendered page whose live part (<see cref="Live"/>) a 30-line script
/// (<see cref="Script"/>) fetches again every second. Read-only: it shows the round, stage and deadline, each cohort
/// member's participation, the round history, the model version, the privacy budget and the latest signed audit
/// checkpoint. It never shows anything about a site's update (threat-model/README.md, "Operator telemetry").
/// </summary>
internal sealed class OperatorConsole(RoundCoordinator coordinator, AggregatorState state, IOptions<AggregatorOptions> options, AggregatorTelemetry telemetry, TimeProvider time)
{
    /// <summary>Rounds shown in the history table.</summary>
    public const int HistoryRows = 50;

    /// <summary>How often the page fetches its live part, in milliseconds.</summary>
    public const int RefreshMilliseconds = 1000;

    /// <summary>What the F1 column shows until federated evaluation reports a figure for the round.</summary>
    public const string NotAvailable = "not available";

    private readonly AggregatorOptions _options = options.Value;

    /// <summary>The polling script (served as /console.js so the page's CSP can forbid inline script).</summary>
    public const string Script = """
        (function () {
          'use strict';
          var live = document.getElementById('live');
          var status = document.getElementById('connection');
          var every = Number(live.getAttribute('data-refresh-ms')) || 1000;
          function tick() {
            fetch('live', { credentials: 'same-origin', cache: 'no-store' })
              .then(function (response) {
                if (response.status === 401) { window.location.reload(); return null; }
                if (!response.ok) { status.textContent = 'The aggregator answered ' + response.status + '; showing the last state.'; return null; }
                return response.text();
              })
              .then(function (html) {
                if (html !== null) { live.innerHTML = html; status.textContent = 'Live: updates every second.'; }
              })
              .catch(function () { status.textContent = 'Connection to the aggregator lost; showing the last state.'; })
              .finally(function () { window.setTimeout(tick, every); });
          }
          window.setTimeout(tick, every);
        })();
        """;

    /// <summary>The whole page.</summary>
    public string Page()
    {
        var html = new StringBuilder(8192);
        Head(html, $"SecureFed operator console: {_options.Federation}");
        html.Append("<header><h1>SecureFed operator console</h1><p>Federation <strong>").Append(E(_options.Federation))
            .Append("</strong> · read-only view of the aggregator</p>")
            .Append("<form method=\"post\" action=\"logout\"><button type=\"submit\">Log out</button></form></header>\n<main>\n");
        html.Append("<p id=\"connection\" role=\"status\">Live: updates every second.</p>\n");
        html.Append("<div id=\"live\" data-refresh-ms=\"").Append(RefreshMilliseconds.ToString(CultureInfo.InvariantCulture)).Append("\">");
        html.Append(Live());
        html.Append("</div>\n</main>\n<script src=\"console.js\" defer></script>\n</body>\n</html>\n");
        return html.ToString();
    }

    /// <summary>The login page (where a browser without a session is sent).</summary>
    public string LoginPage(string? error)
    {
        var html = new StringBuilder(2048);
        Head(html, "SecureFed operator console: log in");
        html.Append("<main><h1>SecureFed operator console</h1>");
        html.Append("<p>Federation <strong>").Append(E(_options.Federation)).Append("</strong>. Access needs the operator token that ")
            .Append("<code>securefed provision</code> wrote to <code>operator/operator.token</code>.</p>");
        if (error is not null)
        {
            html.Append("<p id=\"login-error\" role=\"alert\">").Append(E(error)).Append("</p>");
        }

        html.Append("<form method=\"post\" action=\"login\"><label for=\"token\">Operator token</label> ")
            .Append("<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required size=\"70\"> ")
            .Append("<button type=\"submit\" id=\"login\">Log in</button></form></main>\n</body>\n</html>\n");
        return html.ToString();
    }

    /// <summary>The live part: round status, sites, budget, model, checkpoint, history.</summary>
    public string Live()
    {
        DateTimeOffset now = time.GetUtcNow();
        IReadOnlyList<ConsoleRound> recent = telemetry.Rounds();
        IReadOnlyList<RoundRecord> stored = state.Store.ListRecentRounds(HistoryRows); // bounded work per poll however long the history
        RoundSession? session = coordinator.Current;
        ConsoleRound? latest = recent.Count > 0 ? recent[0] : null;
        var html = new StringBuilder(8192);

        // Now: round, stage, deadline.
        html.Append("<section aria-labelledby=\"now-heading\"><h2 id=\"now-heading\">Now</h2>");
        bool open = session is not null && !session.IsFinished;
        if (open)
        {
            ProtocolStage stage = session!.Server.Stage;
            string name = RoundCoordinator.StageName(stage);
            double left = Math.Max(0, (session.StageDeadline - now).TotalSeconds);
            html.Append("<p id=\"round-status\" data-round=\"").Append(session.Round).Append("\" data-stage=\"").Append(name).Append("\">")
                .Append("Round ").Append(session.Round).Append(": stage <strong>").Append(E(StageLabel(name))).Append("</strong>, deadline ")
                .Append(session.StageDeadline.UtcDateTime.ToString("HH:mm:ss", CultureInfo.InvariantCulture)).Append(" UTC (in ")
                .Append(left.ToString("F0", CultureInfo.InvariantCulture)).Append(" s)</p>");
        }
        else
        {
            // Between rounds the status names how the last one ended ("completed", "aborted"), so stages only move forward.
            string stage = coordinator.IsFinished ? "finished"
                : latest is null || latest.Outcome == RoundOutcomeKind.Running ? "waiting" : latest.Outcome.ToString().ToLowerInvariant();
            html.Append("<p id=\"round-status\" data-round=\"").Append(latest?.Round ?? 0).Append("\" data-stage=\"").Append(stage).Append("\">");
            if (coordinator.IsFinished)
            {
                html.Append(coordinator.Failure is null ? "The federation has finished: no further round will open." : "The coordinator stopped: " + E(coordinator.Failure.Message));
            }
            else
            {
                IReadOnlyCollection<string> waiting = coordinator.WaitingSites;
                if (latest is not null && latest.Outcome != RoundOutcomeKind.Running)
                {
                    html.Append("Round ").Append(latest.Round).Append(' ').Append(stage).Append(". ");
                }

                html.Append("No round is open. Waiting for at least ").Append(_options.MinSites).Append(" sites; ")
                    .Append(waiting.Count == 0 ? "none waiting." : "waiting: " + E(string.Join(", ", waiting.Order(StringComparer.Ordinal))) + ".");
            }

            html.Append("</p>");
        }

        if (latest is not null)
        {
            SitesTable(html, latest, open && session!.Round == latest.Round ? session : null, now);
        }

        IReadOnlyDictionary<string, int> excluded = coordinator.ExcludedSites;
        if (excluded.Count > 0)
        {
            html.Append("<p id=\"excluded\">Left out after a verified accusation: ")
                .Append(E(string.Join(", ", excluded.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} ({p.Value} more attempt(s))")))).Append("</p>");
        }

        html.Append("</section>");

        // Privacy budget and model.
        double spent = state.Budget.Spent(_options.Delta);
        html.Append("<section aria-labelledby=\"privacy-heading\"><h2 id=\"privacy-heading\">Privacy budget and model</h2>");
        html.Append("<p id=\"privacy\" data-spent=\"").Append(spent.ToString("R", CultureInfo.InvariantCulture)).Append("\">Site-level ε spent: <strong>")
            .Append(spent.ToString("F3", CultureInfo.InvariantCulture)).Append("</strong> of the budget ")
            .Append(_options.EpsilonBudget.ToString("G", CultureInfo.InvariantCulture)).Append(" (δ = ")
            .Append(_options.Delta.ToString("G3", CultureInfo.InvariantCulture)).Append(") ")
            .Append("<progress id=\"budget-bar\" aria-label=\"privacy budget spent\" max=\"")
            .Append(_options.EpsilonBudget.ToString("R", CultureInfo.InvariantCulture)).Append("\" value=\"")
            .Append(Math.Min(spent, _options.EpsilonBudget).ToString("R", CultureInfo.InvariantCulture)).Append("\"></progress></p>");
        html.Append("<p id=\"model\" data-version=\"").Append(state.Model.Version).Append("\">Current model: version <strong>")
            .Append(state.Model.Version).Append("</strong>, SHA-256 <code>").Append(E(state.Model.Sha256)).Append("</code></p>");
        html.Append("</section>");

        // Audit checkpoint.
        SignedCheckpoint? checkpoint = state.Audit.LatestCheckpoint;
        html.Append("<section aria-labelledby=\"audit-heading\"><h2 id=\"audit-heading\">Latest signed audit checkpoint</h2>");
        if (checkpoint is null)
        {
            html.Append("<p id=\"checkpoint\">No checkpoint signed yet.</p>");
        }
        else
        {
            html.Append("<p>Log size ").Append(checkpoint.Size).Append(" entries; origin <code>").Append(E(checkpoint.Origin)).Append("</code>.</p>")
                .Append("<pre id=\"checkpoint\">").Append(E(checkpoint.Text)).Append("</pre>");
        }

        html.Append("</section>");

        History(html, recent, stored);
        html.Append("<p id=\"updated\">Updated ").Append(now.UtcDateTime.ToString("HH:mm:ss", CultureInfo.InvariantCulture)).Append(" UTC</p>");
        return html.ToString();
    }

    /// <summary>What the console says for a round's federation F1: the figure, or <see cref="NotAvailable"/>.</summary>
    internal static string F1Cell(double? f1) => f1 is double v ? v.ToString("F3", CultureInfo.InvariantCulture) : NotAvailable;

    private void SitesTable(StringBuilder html, ConsoleRound round, RoundSession? live, DateTimeOffset now)
    {
        html.Append("<table id=\"sites\"><caption>Sites in round ").Append(round.Round).Append("</caption>")
            .Append("<thead><tr><th scope=\"col\">Site</th><th scope=\"col\">State</th><th scope=\"col\">Detail</th></tr></thead><tbody>");
        IReadOnlyCollection<int> delivered = live?.Server.Delivered ?? [];
        IReadOnlyCollection<int> expected = live?.Server.Expected ?? [];
        foreach ((string site, ConsoleSite record) in round.Sites.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            SiteState shown = record.State;
            string detail = record.State switch
            {
                SiteState.Dropped => "dropped at " + StageLabel(record.Stage ?? "?"),
                SiteState.Declined => "declined: " + record.Reason,
                SiteState.Contributed => "update in model version " + round.ModelVersionAfter?.ToString(CultureInfo.InvariantCulture),
                _ => string.Empty,
            };
            if (record.State == SiteState.Waiting)
            {
                if (live is not null)
                {
                    int index = live.IndexOf(site);
                    string stage = StageLabel(RoundCoordinator.StageName(live.Server.Stage));
                    (shown, detail) = delivered.Contains(index) ? (SiteState.Delivered, "delivered " + stage)
                        : !expected.Contains(index) ? (SiteState.Dropped, "out of the round")
                        : now > live.StageDeadline ? (SiteState.Late, "deadline passed, " + stage + " not received")
                        : (SiteState.Waiting, "waiting for " + stage);
                }
                else if (round.Outcome == RoundOutcomeKind.Aborted)
                {
                    detail = "round aborted at " + StageLabel(round.AbortStage ?? "?");
                }
            }

            string word = shown.ToString().ToLowerInvariant();
            html.Append("<tr data-site=\"").Append(E(site)).Append("\" data-state=\"").Append(word).Append("\"><th scope=\"row\">").Append(E(site))
                .Append("</th><td class=\"state ").Append(word).Append("\">").Append(word).Append("</td><td>").Append(E(detail)).Append("</td></tr>");
        }

        html.Append("</tbody></table>");
    }

    private static void History(StringBuilder html, IReadOnlyList<ConsoleRound> recent, IReadOnlyList<RoundRecord> stored)
    {
        var byRound = recent.GroupBy(r => r.Round).ToDictionary(g => g.Key, g => g.First());
        html.Append("<section aria-labelledby=\"history-heading\"><h2 id=\"history-heading\">Round history</h2>")
            .Append("<table id=\"history\"><caption>Newest first; bytes are those this aggregator process received from sites while the round was open (since it started; on the aggregator cluster, masked-input slices taken by other silos are not counted). ")
            .Append("The federation F1 is the score of the model version the round started from (federated evaluation), never of the version it produced: that one is scored by the next round.</caption>")
            .Append("<thead><tr><th scope=\"col\">Round</th><th scope=\"col\">Outcome</th><th scope=\"col\">Survivors</th><th scope=\"col\">Duration</th>")
            .Append("<th scope=\"col\">Bytes received</th><th scope=\"col\">Model version produced</th><th scope=\"col\">Model version scored</th><th scope=\"col\">Federation F1 of the version scored</th></tr></thead><tbody>");
        foreach (RoundRecord r in stored.OrderByDescending(r => r.Round).Take(HistoryRows))
        {
            byRound.TryGetValue(r.Round, out ConsoleRound? mine);
            string outcome = r.Status switch
            {
                RoundStatus.Completed => "completed",
                RoundStatus.Aborted => "aborted: " + r.AbortReason,
                _ => "running",
            };
            string duration = r.EndedUtc is { } ended ? (ended - r.StartedUtc).TotalSeconds.ToString("F1", CultureInfo.InvariantCulture) + " s" : "—";
            string survivors = r.Status == RoundStatus.Completed ? r.Participants.Count.ToString(CultureInfo.InvariantCulture) : r.Status == RoundStatus.Aborted ? "0" : "—";
            string bytes = mine is null || mine.Recovered ? "—" : mine.BytesReceived.ToString("N0", CultureInfo.InvariantCulture);
            string model = mine?.ModelVersionAfter?.ToString(CultureInfo.InvariantCulture) ?? "—";

            // The F1 a round reports is that of the model it started from (RoundCoordinator.AuditEvaluation), so it is shown
            // beside that version: next to the version the round produced it made an operator pick a model no evaluation had
            // scored, which carries the round's own edits (a hostile site's within the sum bound included).
            string scored = mine is { FederationF1: not null } ? mine.BaseModelVersion.ToString(CultureInfo.InvariantCulture) : "—";
            html.Append("<tr data-round=\"").Append(r.Round).Append("\" data-outcome=\"").Append(r.Status.ToString().ToLowerInvariant()).Append("\"><th scope=\"row\">")
                .Append(r.Round).Append("</th><td>").Append(E(outcome)).Append("</td><td>").Append(survivors).Append("</td><td>").Append(duration)
                .Append("</td><td>").Append(bytes).Append("</td><td>").Append(model).Append("</td><td class=\"scored\">").Append(scored)
                .Append("</td><td class=\"f1\">").Append(F1Cell(mine?.FederationF1)).Append("</td></tr>");
        }

        html.Append("</tbody></table></section>");
    }

    private static string StageLabel(string stage) => stage switch
    {
        "advertise_keys" => "advertise keys (local training)",
        "share_keys" => "share keys",
        "masked_input" => "masked input",
        "consistency" => "consistency check",
        "unmasking" => "unmasking",
        _ => stage,
    };

    private static void Head(StringBuilder html, string title)
    {
        html.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>")
            .Append(E(title)).Append("</title>\n<style>\n")
            .Append("body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a1a1a;background:#fff;max-width:75rem}")
            .Append("table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #bbb;padding:.25rem .6rem;text-align:left}")
            .Append("caption{text-align:left;font-weight:600;padding:.25rem 0}pre{background:#f3f3f3;padding:.5rem;overflow-x:auto}")
            .Append(".delivered,.contributed{color:#0b5d1e}.dropped,.late{color:#8a1111;font-weight:600}.declined{color:#6b4a00}")
            .Append("header form{display:inline}#login-error{color:#8a1111}")
            .Append("\n</style>\n</head>\n<body>\n");
    }

    private static string E(string? text) => WebUtility.HtmlEncode(text ?? string.Empty);
}
