using SecureFed.Experiments;

namespace SecureFed.PrivacyAudit;

/// <summary>The audit's PNGs (ScottPlot, drawn like the experiment's chart): the attack's ROC per arm, and the canaries' exposure per arm.</summary>
internal static class PrivacyAuditChart
{
    public static void WriteRoc(PrivacyAuditReport report, string path)
    {
        var plot = new ScottPlot.Plot();
        var chance = plot.Add.Scatter(new double[] { 0, 1 }, new double[] { 0, 1 });
        chance.LegendText = "chance";
        chance.LinePattern = ScottPlot.LinePattern.Dotted;
        chance.MarkerSize = 0;
        foreach (PrivacyAuditArm arm in report.Arms)
        {
            if (arm.Roc.Count < 2)
            {
                continue;
            }

            double[] xs = [.. arm.Roc.Select(p => p.FalsePositiveRate)];
            double[] ys = [.. arm.Roc.Select(p => p.TruePositiveRate)];
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = FormattableString.Invariant($"{arm.Arm} (AUC {arm.MiaAuc:F3})");
            line.MarkerSize = 0;
            line.LineWidth = 2;
        }

        plot.Title("SecureFed privacy audit: membership inference (calibrated loss attack) on the audited site's sentences");
        plot.XLabel("false-positive rate (held-out sentences called members)");
        plot.YLabel("true-positive rate (training sentences called members)");
        plot.Axes.SetLimits(0, 1, 0, 1);
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        plot.SavePng(path, 900, 640);
    }

    public static void WriteExposure(PrivacyAuditReport report, string path)
    {
        var plot = new ScottPlot.Plot();
        for (int a = 0; a < report.Arms.Count; a++)
        {
            PrivacyAuditArm arm = report.Arms[a];
            if (arm.Exposures.Count == 0)
            {
                continue;
            }

            // One column of points per arm, jittered a little so equal exposures stay visible.
            var random = new Random(a);
            double[] xs = [.. arm.Exposures.Select(_ => a + 1 + ((random.NextDouble() - 0.5) * 0.3))];
            double[] ys = [.. arm.Exposures];
            var points = plot.Add.ScatterPoints(xs, ys);
            points.LegendText = FormattableString.Invariant($"{arm.Arm} (mean {arm.ExposureMean:F2} bits)");
            points.MarkerSize = 8;
            if (arm.ControlExposures.Count > 0)
            {
                double[] cx = [.. arm.ControlExposures.Select(_ => a + 1.3 + ((random.NextDouble() - 0.5) * 0.1))];
                double[] cy = [.. arm.ControlExposures];
                var control = plot.Add.ScatterPoints(cx, cy, points.Color);
                control.LegendText = FormattableString.Invariant($"  control, never inserted (mean {arm.ControlExposureMean:F2})");
                control.MarkerShape = ScottPlot.MarkerShape.OpenCircle;
                control.MarkerSize = 7;
            }
        }

        var ticks = new ScottPlot.TickGenerators.NumericManual();
        for (int a = 0; a < report.Arms.Count; a++)
        {
            ticks.AddMajor(a + 1, report.Arms[a].Epsilon is double e ? "ε = " + EpsilonText.Format(e) : "no DP");
        }

        plot.Axes.Bottom.TickGenerator = ticks;

        double cap = report.Arms.Count > 0 ? report.Arms[0].ExposureCap : 0;
        var capLine = plot.Add.HorizontalLine(cap);
        capLine.LegendText = FormattableString.Invariant($"largest measurable ({cap:F1} bits)");
        capLine.LinePattern = ScottPlot.LinePattern.Dashed;
        plot.Title("SecureFed privacy audit: exposure of the secret canaries per arm");
        plot.XLabel("arm (filled: secret canaries inserted r times; open: control canaries)");
        plot.YLabel("exposure (bits; chance averages 1.44)");
        plot.Axes.SetLimits(0.5, report.Arms.Count + 0.7, 0, cap + 1);
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        plot.SavePng(path, 900, 560);
    }
}
