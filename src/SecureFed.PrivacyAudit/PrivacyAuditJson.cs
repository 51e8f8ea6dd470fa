using System.Text.Json;

namespace SecureFed.PrivacyAudit;

/// <summary>privacy-audit.json and the one-line summary printed last with <c>--json</c> (the same <c>arms</c> list without the ROC points).</summary>
public static class PrivacyAuditJson
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The whole report, ROC points included.</summary>
    public static string Report(PrivacyAuditReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var document = new Dictionary<string, object?>
        {
            ["kind"] = "securefed-privacy-audit",
            ["data"] = report.Data,
            ["configuration"] = report.Configuration,
            ["arms"] = report.Arms.Select(a => Arm(a, withRoc: true)).ToArray(),
            ["started_utc"] = report.Started.ToString("u", System.Globalization.CultureInfo.InvariantCulture),
            ["written_utc"] = report.Written.ToString("u", System.Globalization.CultureInfo.InvariantCulture),
        };
        return JsonSerializer.Serialize(document, Indented);
    }

    /// <summary>One line: {"arms": [...], "results": path, "charts": [...]}.</summary>
    public static string SummaryLine(PrivacyAuditReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        return JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["arms"] = report.Arms.Select(a => Arm(a, withRoc: false)).ToArray(),
            ["results"] = report.JsonPath,
            ["charts"] = new[] { report.RocChartPath, report.ExposureChartPath },
        });
    }

    private static Dictionary<string, object?> Arm(PrivacyAuditArm a, bool withRoc)
    {
        var arm = new Dictionary<string, object?>
        {
            ["arm"] = a.Arm,
            ["epsilon"] = a.Epsilon,
            ["epsilon_spent"] = a.EpsilonSpent,
            ["test_f1"] = a.TestF1,
            ["exposure_mean"] = a.ExposureMean,
            ["exposure_max"] = a.Exposures.Count == 0 ? null : a.Exposures.Max(),
            ["exposure_cap_bits"] = a.ExposureCap,
            ["exposures"] = a.Exposures,
            ["exposure_control_mean"] = a.ControlExposureMean,
            ["exposures_control"] = a.ControlExposures,
            ["exposure_calibrated_mean"] = a.CalibratedExposures.Count == 0 ? null : a.CalibratedExposures.Average(),
            ["exposures_calibrated"] = a.CalibratedExposures,
            ["exposure_calibrated_control_mean"] = a.CalibratedControlExposures.Count == 0 ? null : a.CalibratedControlExposures.Average(),
            ["exposure_extrapolated_mean"] = a.ExtrapolatedExposures.Count == 0 ? null : a.ExtrapolatedExposures.Average(),
            ["exposures_extrapolated"] = a.ExtrapolatedExposures,
            ["mia_auc"] = a.MiaAuc,
            ["mia_tpr_at_1pct_fpr"] = a.MiaTprAt1PctFpr,
            ["mia_auc_uncalibrated"] = a.MiaAucUncalibrated,
            ["canary_mia_auc"] = a.CanaryMiaAuc,
            ["empirical_epsilon_lower_bound"] = a.EmpiricalEpsilonLowerBound,
            ["canary_audit"] = Audit(a.CanaryAudit),
            ["empirical_epsilon_lower_bound_natural"] = a.NaturalAudit?.EpsilonLowerBound,
            ["natural_audit"] = Audit(a.NaturalAudit),
            ["group_mia_auc"] = a.GroupMiaAuc,
            ["empirical_epsilon_lower_bound_group"] = a.GroupAudit?.Audit.EpsilonLowerBound,
            ["group_audit"] = a.GroupAudit is not { } g ? null : new
            {
                group_size = g.GroupSize,
                examples = g.Audit.Examples,
                guesses = g.Audit.Guesses,
                correct = g.Audit.Correct,
                epsilon_lower_bound = g.Audit.EpsilonLowerBound,
                p_value_per_test = g.Audit.PValueUsed,
                claimed_group_epsilon = g.ClaimedEpsilon,
                claimed_group_delta = g.ClaimedDelta,
                claim_vacuous = g.Vacuous,
            },
            ["bound_exceeds_claim"] = a.BoundExceedsClaim,
            ["wall_seconds"] = a.WallSeconds,
        };
        if (withRoc)
        {
            arm["mia_roc"] = a.Roc.Select(p => new[] { p.FalsePositiveRate, p.TruePositiveRate }).ToArray();
        }

        return arm;
    }

    private static object? Audit(OneRunAuditResult? r) => r is null ? null : new
    {
        examples = r.Examples,
        guesses = r.Guesses,
        correct = r.Correct,
        epsilon_lower_bound = r.EpsilonLowerBound,
        p_value_per_test = r.PValueUsed,
    };
}
