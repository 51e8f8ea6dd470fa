namespace SecureFed.Cli.Demo;

/// <summary>The demo's PNG: dev F1 of the fused model and ε spent per guarantee, per round (ScottPlot).</summary>
internal static class DemoChart
{
    public static void Write(IReadOnlyList<DemoRound> rounds, string path)
    {
        var plot = new ScottPlot.Plot();
        double[] xs = [.. rounds.Select(r => (double)r.Round)];
        double[] f1 = [.. rounds.Select(r => double.IsNaN(r.DevF1) ? 0 : r.DevF1)];
        double[] record = [.. rounds.Select(r => double.IsNaN(r.RecordEpsilon) ? 0 : r.RecordEpsilon)];
        double[] site = [.. rounds.Select(r => double.IsNaN(r.SiteEpsilon) ? 0 : r.SiteEpsilon)];

        var f1Line = plot.Add.Scatter(xs, f1);
        f1Line.LegendText = "dev F1 of the fused model (left axis)";
        f1Line.LineWidth = 3;
        var recordLine = plot.Add.Scatter(xs, record);
        recordLine.LegendText = "ε patient-level, max over sites (right axis)";
        recordLine.Axes.YAxis = plot.Axes.Right;
        var siteLine = plot.Add.Scatter(xs, site);
        siteLine.LegendText = "ε site-level (right axis)";
        siteLine.Axes.YAxis = plot.Axes.Right;
        siteLine.LinePattern = ScottPlot.LinePattern.Dashed;

        plot.Title("SecureFed demo: accuracy and privacy budget per round");
        plot.XLabel("round");
        plot.Axes.Left.Label.Text = "F1";
        plot.Axes.Right.Label.Text = "ε (δ = 1e-5)";
        plot.Axes.SetLimitsY(0, 1, plot.Axes.Left);
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        plot.SavePng(path, 1000, 560);
    }
}
