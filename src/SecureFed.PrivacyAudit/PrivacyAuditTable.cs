using System.Globalization;
using System.Text;

namespace SecureFed.PrivacyAudit;

/// <summary>The printed table: one row per arm, the accountant's ε beside the empirical lower bounds.</summary>
public static class PrivacyAuditTable
{
    /// <summary>The table with a header and a line on how to read it.</summary>
    public static string Format(PrivacyAuditReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sb = new StringBuilder();
        sb.AppendLine(report.Data);
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"audited site: {report.Configuration["audited_site"]}; {report.Configuration["canaries"]} secret canaries × {report.Configuration["repeats"]}, each ranked against {report.Configuration["candidates_per_canary"]} never-inserted candidates; {report.Configuration["audit_canaries"]} audit canaries (× 1), {report.Configuration["group_canaries"]} group canaries (× {report.Configuration["group_size"]}) and {report.Configuration["audit_sentences"]} natural sentences each in with probability 1/2; δ = {report.Configuration["delta"]}"));
        sb.AppendLine($"score: {report.Configuration["score"]}");
        sb.AppendLine();
        string r = string.Create(CultureInfo.InvariantCulture, $"r={report.Configuration["group_size"]}");
        sb.AppendLine($"{"arm",-34} {"ε claimed",9} {"ε ≥ (r=1)",9} {"ε ≥ (natural)",13} {"ε claimed (" + r + ")",16} {"ε ≥ (" + r + ")",11} {"exposure",9} {"control",8} {"MIA AUC",8} {"(raw)",6} {"TPR@1%",7} {"canary AUC",10} {"group AUC",9} {"test F1",7}");
        foreach (PrivacyAuditArm a in report.Arms)
        {
            sb.AppendLine(Row(a));
        }

        sb.AppendLine();
        sb.AppendLine("ε ≥: empirical lower bounds at 95 % confidence (Steinke, Nasr, Jagielski 2023); they can only show leakage, never prove privacy.");
        sb.AppendLine("ε ≥ (r=1) and (natural): per sentence, against the accountant's ε. ε ≥ (r=…): per group of r copies of a canary, against the group-privacy ε = rε at δ_r = r·e^((r−1)ε)·δ (\"vacuous\" when δ_r ≥ 1).");
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"exposure: mean bits over the secret canaries (control: the same for as many never-inserted canaries), at most {(report.Arms.Count > 0 ? report.Arms[0].ExposureCap : 0):F1} with this candidate sample; chance (no memorisation) averages 1/ln 2 ≈ 1.44. AUC 0.5 is chance."));
        return sb.ToString();
    }

    /// <summary>One progress line for an arm.</summary>
    public static string ArmLine(PrivacyAuditArm arm)
    {
        ArgumentNullException.ThrowIfNull(arm);
        return "[audit] " + Row(arm).TrimEnd();
    }

    private static string Row(PrivacyAuditArm a) => string.Create(CultureInfo.InvariantCulture,
        $"{a.Arm,-34} {Num(a.EpsilonSpent, "F2"),9} {Num(a.CanaryAudit?.EpsilonLowerBound, "F2"),9} {Num(a.NaturalAudit?.EpsilonLowerBound, "F2"),13} {GroupClaim(a),16} {Num(a.GroupAudit?.Audit.EpsilonLowerBound, "F2"),11} {Num(a.ExposureMean, "F2"),9} {Num(a.ControlExposureMean, "F2"),8} {Num(a.MiaAuc, "F3"),8} {Num(a.MiaAucUncalibrated, "F3"),6} {Num(a.MiaTprAt1PctFpr, "F3"),7} {Num(a.CanaryMiaAuc, "F3"),10} {Num(a.GroupMiaAuc, "F3"),9} {a.TestF1,7:F3}");

    private static string GroupClaim(PrivacyAuditArm a) => a.GroupAudit switch
    {
        null => "-",
        { Vacuous: true } => "vacuous",
        { ClaimedEpsilon: double e } => e.ToString("F2", CultureInfo.InvariantCulture),
        _ => "-",
    };

    private static string Num(double? value, string format) => value is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "-";
}
