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

        plot.Title($"SecureFed experiment: dev F1 per round ({options.Split.ToString().ToLowerInvariant()}, {options.ConfigName} model, mean of {options.Seeds} seed{(options.Seeds == 1 ? "" : "s")})");
        plot.XLabel($"round ({options.LocalEpochs} local epoch(s) each; centralized arms: the same epochs)");
        plot.YLabel("dev F1 (conlleval)");
        plot.Axes.SetLimitsY(0, 1);
        // Rounds are whole numbers (the automatic ticks put 1.5, 2.5, … between them); any count of rounds, 10 or 200.
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        // Beside the data area, not in it: inside, the legend of nine arms covered the low DP curves' last rounds.
        plot.ShowLegend(ScottPlot.Edge.Right);
        plot.SavePng(path, 1200, 560);
    }
}
