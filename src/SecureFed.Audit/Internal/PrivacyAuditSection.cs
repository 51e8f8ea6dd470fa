using System.Globalization;
using System.Text;
using System.Text.Json;

namespace SecureFed.Audit.Internal;

/// <summary>
/// The result of a <c>securefed privacy audit</c> run (its privacy-audit.json), shown in the report beside the ε the
/// ledger logged: per arm the accountant's ε, the empirical ε lower bounds, exposure and the attack's AUC. The audit
/// trains its own federation on the same recipe; it is evidence about the training code, not about this log's run.
/// </summary>
internal sealed record PrivacyAuditSection(string Path, string Data, IReadOnlyList<PrivacyAuditSection.Arm> Arms)
{
    /// <summary>Reads privacy-audit.json (or the one-line summary printed with --json); errors name the file and what is wrong.</summary>
    /// <exception cref="InvalidDataException">The file is not a privacy-audit result.</exception>
    public static PrivacyAuditSection Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"privacy audit result {path} does not exist.", path);
        }

        // A named pipe "exists" too: reading one waited for a writer forever (the report hung with no message).
        if (SecureFed.Federation.Internal.RegularFile.NonRegularKind(path) is { } kind)
        {
            throw new InvalidDataException($"privacy audit result {path}{SecureFed.Federation.Internal.RegularFile.LinkText(path)} is {kind}, not a regular file; give the privacy-audit.json that 'securefed privacy audit' wrote. It was not opened.");
        }

        try
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(path));
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("arms", out JsonElement arms) || arms.ValueKind != JsonValueKind.Array)
            {
                throw new InvalidDataException($"{path} is not a privacy-audit result: no \"arms\" list (write it with 'securefed privacy audit').");
            }

            RequireKind(path, root);

            var list = new List<Arm>();
            foreach (JsonElement a in arms.EnumerateArray())
            {
                list.Add(new Arm(
                    a.TryGetProperty("arm", out JsonElement name) && name.ValueKind == JsonValueKind.String ? name.GetString()! : throw new InvalidDataException($"{path}: arm {list.Count + 1} has no \"arm\" name."),
                    Number(a, "epsilon"),
                    Number(a, "epsilon_spent"),
                    Number(a, "empirical_epsilon_lower_bound"),
                    Number(a, "empirical_epsilon_lower_bound_natural"),
                    Number(a, "exposure_mean"),
                    Number(a, "mia_auc"),
                    Number(a, "mia_tpr_at_1pct_fpr"),
                    Group(a)));
            }

            string data = root.TryGetProperty("data", out JsonElement d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : string.Empty;
            return new PrivacyAuditSection(path, data, list);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// privacy-audit.json says <c>"kind": "securefed-privacy-audit"</c>; the one-line summary printed with --json has no
    /// kind but names its "charts". Anything else with an "arms" list (the results.json of 'securefed experiment' has one)
    /// is refused, naming the file, what it looks like and what was expected.
    /// </summary>
    private static void RequireKind(string path, JsonElement root)
    {
        const string Expected = "expected the privacy-audit.json of 'securefed privacy audit' (\"kind\": \"" + Kind + "\")";
        if (root.TryGetProperty("kind", out JsonElement kind))
        {
            if (kind.ValueKind == JsonValueKind.String && kind.GetString() == Kind)
            {
                return;
            }

            throw new InvalidDataException($"{path} is not a privacy-audit result: its \"kind\" is {kind.GetRawText()}; {Expected}.");
        }

        if (root.TryGetProperty("charts", out JsonElement charts) && charts.ValueKind == JsonValueKind.Array)
        {
            return; // the --json summary line of 'securefed privacy audit'
        }

        string looksLike = root.TryGetProperty("runs", out _) && root.TryGetProperty("sites", out _)
            ? "it looks like the results.json of 'securefed experiment'"
            : "it has no \"kind\"";
        throw new InvalidDataException($"{path} is not a privacy-audit result: {looksLike}; {Expected}.");
    }

    /// <summary>The "kind" of privacy-audit.json (PrivacyAuditJson.Report).</summary>
    private const string Kind = "securefed-privacy-audit";

    public void Append(StringBuilder html, AuditFindings findings)
    {
        html.Append("<section aria-labelledby=\"privacy-audit-heading\"><h2 id=\"privacy-audit-heading\">Empirical privacy audit</h2>\n");
        double? ledger = findings.PatientEpsilon.Count == 0 ? null : findings.PatientEpsilon.Values.SelectMany(p => p).Max(p => p.Epsilon);
        html.Append(CultureInfo.InvariantCulture, $"<p id=\"privacy-audit-ledger\">Highest patient-level ε in these logs: <b>{(ledger is double l ? ReportHtml.N(l) : "none logged")}</b>. ")
            .Append(CultureInfo.InvariantCulture, $"Audit result <code>{Html.Encode(System.IO.Path.GetFileName(Path))}</code>{(Data.Length > 0 ? ": " + Html.Encode(Data) : string.Empty)}.</p>\n")
            .Append("<table id=\"privacy-audit\"><caption class=\"muted\">Canary and membership-inference attacks on a fused model trained with the same code (lower bounds on leakage at 95 % confidence, never a proof of privacy). An empirical bound above the accountant's ε is a bug.</caption>")
            .Append("<thead><tr><th scope=\"col\">arm</th><th scope=\"col\">ε (accountant)</th><th scope=\"col\">ε ≥ (canaries)</th><th scope=\"col\">ε ≥ (natural)</th><th scope=\"col\">exposure (bits)</th><th scope=\"col\">MIA AUC</th><th scope=\"col\">TPR at 1 % FPR</th><th scope=\"col\">group of r: ε ≥ (claimed)</th></tr></thead><tbody>\n");
        foreach (Arm arm in Arms)
        {
            bool over = arm.EpsilonSpent is double claimed && ((arm.Bound ?? 0) > claimed || (arm.NaturalBound ?? 0) > claimed
                || (arm.Group is { Claimed: double groupClaim } g && g.Bound > groupClaim));
            html.Append(CultureInfo.InvariantCulture, $"<tr{(over ? " class=\"bad\"" : string.Empty)}><td>{Html.Encode(arm.Name)}</td><td>{Show(arm.EpsilonSpent, "no DP")}</td><td>{Show(arm.Bound)}</td><td>{Show(arm.NaturalBound)}</td><td>{Show(arm.ExposureMean)}</td><td>{Show(arm.MiaAuc)}</td><td>{Show(arm.MiaTpr)}</td><td>{GroupCell(arm.Group)}</td></tr>\n");
        }

        html.Append("</tbody></table></section>\n");
    }

    private static string Show(double? value, string none = "–") => value is double v ? ReportHtml.N(v) : none;

    private static string GroupCell(GroupBound? g) => g is null ? "–"
        : string.Create(CultureInfo.InvariantCulture, $"r = {g.Size}: {ReportHtml.N(g.Bound)} ({(g.Vacuous ? "claim vacuous" : g.Claimed is double c ? ReportHtml.N(c) : "no DP")})");

    private static GroupBound? Group(JsonElement arm)
    {
        if (!arm.TryGetProperty("group_audit", out JsonElement g) || g.ValueKind != JsonValueKind.Object
            || Number(g, "group_size") is not double size || Number(g, "epsilon_lower_bound") is not double bound)
        {
            return null;
        }

        return new GroupBound((int)size, bound, Number(g, "claimed_group_epsilon"), g.TryGetProperty("claim_vacuous", out JsonElement v) && v.ValueKind == JsonValueKind.True);
    }

    private static double? Number(JsonElement arm, string name) =>
        arm.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : null;

    /// <summary>One arm of the audit.</summary>
    internal sealed record Arm(string Name, double? Epsilon, double? EpsilonSpent, double? Bound, double? NaturalBound, double? ExposureMean, double? MiaAuc, double? MiaTpr, GroupBound? Group);

    /// <summary>The one-run bound on canaries inserted r times: for a group of r sentences, beside the group-privacy ε (null: no DP or vacuous).</summary>
    internal sealed record GroupBound(int Size, double Bound, double? Claimed, bool Vacuous);
}
