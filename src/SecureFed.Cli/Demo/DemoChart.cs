using SecureFed.Experiments;

namespace SecureFed.Cli.Demo;

/// <summary>
/// The demo's PNG (ScottPlot): dev F1 of the fused model (left axis, 0–1) and each site's patient-level ε spent
/// (right axis) after every round, rounds as integers. The site-level ε is left out on purpose: with a handful of
/// hospitals it is in the hundreds of thousands (no meaningful guarantee), would set the right axis and flatten the
/// patient-level lines; the table and the console text report it.
/// </summary>
internal static class DemoChart
{
    public static void Write(IReadOnlyList<DemoRound> rounds, IReadOnlyList<string> sites, double epsilonTarget, string path)
    {
        ArgumentNullException.ThrowIfNull(rounds);
        ArgumentNullException.ThrowIfNull(sites);
        var plot = new ScottPlot.Plot();
        double[] xs = [.. rounds.Select(r => (double)r.Round)];
        double[] f1 = [.. rounds.Select(r => r.DevF1)];
        var f1Line = plot.Add.Scatter(xs, f1);
        f1Line.LegendText = "dev F1 of the fused model (left axis)";
        f1Line.LineWidth = 3;
        f1Line.MarkerSize = 9;

        double maxEpsilon = epsilonTarget;
        ScottPlot.LinePattern[] patterns = [ScottPlot.LinePattern.Dashed, ScottPlot.LinePattern.Dotted, ScottPlot.LinePattern.DenselyDashed];
        // Sites that spent exactly the same ε share one line (otherwise the lines hide each other).
        var series = sites.Select(site => (Site: site, Eps: rounds.Select(r => r.RecordEpsilonPerSite.TryGetValue(site, out double e) ? e : double.NaN).ToArray()))
            .GroupBy(x => string.Join(";", x.Eps.Select(e => e.ToString("R", System.Globalization.CultureInfo.InvariantCulture))), StringComparer.Ordinal)
            .ToList();
        for (int i = 0; i < series.Count; i++)
        {
            double[] eps = series[i].First().Eps;
            string[] names = [.. series[i].Select(x => x.Site)];
            maxEpsilon = Math.Max(maxEpsilon, eps.Where(double.IsFinite).DefaultIfEmpty(0).Max());
            var line = plot.Add.Scatter(xs, eps);
            line.LegendText = names.Length == 1
                ? $"ε patient-level spent, {names[0]} (right axis)"
                : $"ε patient-level spent, each of {string.Join(", ", names)} (right axis)";
            line.Axes.YAxis = plot.Axes.Right;
            line.LinePattern = patterns[i % patterns.Length];
            line.LineWidth = 2;
            line.MarkerSize = 6;
        }

        var target = plot.Add.HorizontalLine(epsilonTarget);
        target.Axes.YAxis = plot.Axes.Right;
        target.LinePattern = ScottPlot.LinePattern.Dotted;
        target.Color = ScottPlot.Colors.Gray;
        target.LegendText = $"ε budget per site = {EpsilonText.Format(epsilonTarget)} (right axis)";

        plot.Title("SecureFed demo: fused-model F1 and patient-level privacy spent, per round");
        plot.XLabel("round");
        plot.Axes.Left.Label.Text = "dev F1 (fused model)";
        plot.Axes.Right.Label.Text = "patient-level ε spent (δ = 1e-5)";
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericFixedInterval(1);
        int last = rounds.Count == 0 ? 1 : (int)rounds.Max(r => r.Round);
        plot.Axes.SetLimitsX(0.5, last + 0.5);
        plot.Axes.SetLimitsY(0, 1, plot.Axes.Left);
        plot.Axes.SetLimitsY(0, Math.Ceiling(maxEpsilon * 1.15), plot.Axes.Right);
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        plot.SavePng(path, 1000, 560);
    }
}
