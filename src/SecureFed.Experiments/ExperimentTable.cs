using System.Globalization;
using System.Text;

namespace SecureFed.Experiments;

/// <summary>The terminal table: test F1 per arm (mean ± sd over seeds), per entity type, ε and wall time.</summary>
public static class ExperimentTable
{
    /// <summary>Formats the table as plain text.</summary>
    public static string Format(ExperimentReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        string[] types = [.. report.Summaries.SelectMany(s => s.MeanF1PerType.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        string[] header = ["arm", "ε", "test F1 (mean ± sd)", .. types.Select(t => "F1 " + t), "wall s"];
        var rows = new List<string[]> { header };
        foreach (ArmSummary s in report.Summaries)
        {
            rows.Add([
                s.Arm,
                s.Epsilon is double e ? EpsilonText.Format(e) : "-",
                string.Create(CultureInfo.InvariantCulture, $"{s.MeanF1:F3} ± {s.StdF1:F3}"),
                .. types.Select(t => s.MeanF1PerType.TryGetValue(t, out double v) ? v.ToString("F3", CultureInfo.InvariantCulture) : "-"),
                s.MeanWallSeconds.ToString("F0", CultureInfo.InvariantCulture),
            ]);
        }

        int[] widths = [.. Enumerable.Range(0, header.Length).Select(c => rows.Max(r => r[c].Length))];
        var text = new StringBuilder();
        text.AppendLine(report.Data);
        foreach (SiteData site in report.Sites)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {site.Name}: {site.Source}, labels {string.Join("/", site.EntityTypes)}");
        }

        for (int r = 0; r < rows.Count; r++)
        {
            text.AppendLine(string.Join(" | ", rows[r].Select((cell, c) => c == 0 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]))));
            if (r == 0)
            {
                text.AppendLine(string.Join("-+-", widths.Select(w => new string('-', w))));
            }
        }

        // Distributed noise: ε holds against the aggregator; name what it becomes if the other sites collude with it.
        foreach (IGrouping<string, ArmResult> arm in report.Results.Where(r => r.CollusionEpsilon is not null).GroupBy(r => r.Arm))
        {
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"  {arm.Key}: noise split across the sites; ε if the aggregator and every other site collude: {EpsilonText.Format(arm.Max(r => r.CollusionEpsilon)!.Value)}"));
        }

        // Self-training on public text: teacher and student side by side, per seed (the student's epoch chosen by dev F1).
        foreach (ArmResult run in report.Results.Where(r => r.Distillation is not null))
        {
            DistillationResult d = run.Distillation!;
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"  seed {run.Seed}, {d.TeacherArm}: teacher dev F1 {d.TeacherDevF1:F3}, test F1 {d.TeacherTestF1:F3}; self-trained student (epoch {d.BestEpoch} of {d.DevF1PerEpoch.Count} by dev) dev F1 {d.StudentDevF1:F3}, test F1 {d.StudentTestF1:F3}"));
        }

        return text.ToString();
    }
}
