namespace SecureFed.Experiments;

/// <summary>The experiment's PNG: mean dev F1 per round of every arm, one picture (ScottPlot, drawn like the demo's rounds.png).</summary>
internal static class ExperimentChart
{
    public static void Write(IReadOnlyList<ArmSummary> arms, ExperimentOptions options, string path)
    {
        var plot = new ScottPlot.Plot();
        foreach (ArmSummary arm in arms)
        {
            // A self-trained student's curve is per epoch of its training, not per round.
            if (arm.MeanDevF1PerRound.Count < 2 || arm.Kind == PublicDistillation.StudentKind)
            {
                continue;
            }

            double[] xs = [.. Enumerable.Range(1, arm.MeanDevF1PerRound.Count).Select(i => (double)i)];
            double[] ys = [.. arm.MeanDevF1PerRound.Select(v => double.IsNaN(v) ? 0 : v)];
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = arm.Arm;
            line.LineWidth = arm.Kind is "federated" or "pooled" ? 3 : 2;
            if (arm.Kind == "site_alone")
            {
                line.LinePattern = ScottPlot.LinePattern.Dotted;
            }
            else if (arm.Kind.StartsWith("federated_dp", StringComparison.Ordinal))
            {
                line.LinePattern = ScottPlot.LinePattern.Dashed;
            }
        }

        plot.Title($"SecureFed experiment: dev F1 per round ({options.Split.ToString().ToLowerInvariant()}, {options.ConfigName} model, mean of {options.Seeds} seeds)");
        plot.XLabel($"round ({options.LocalEpochs} local epoch(s) each; centralized arms: the same epochs)");
        plot.YLabel("dev F1 (conlleval)");
        plot.Axes.SetLimitsY(0, 1);
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        plot.SavePng(path, 1000, 560);
    }
}
