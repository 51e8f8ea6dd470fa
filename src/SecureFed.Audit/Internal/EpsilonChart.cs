using System.Globalization;
using System.Text;

namespace SecureFed.Audit.Internal;

/// <summary>
/// Draws each site's cumulative patient-level ε over the rounds against its budget as inline SVG (no script, no
/// external resource). Rounds are integers on the x axis; each budget is a dashed line in the site's colour, or one
/// line when all sites share it. Lines are drawn widest first so sites with the same ε stay visible as stripes.
/// </summary>
internal static class EpsilonChart
{
    /// <summary>Okabe–Ito colours (distinguishable with colour-vision deficiencies), without the yellow.</summary>
    internal static readonly string[] Palette = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"];

    private const double Width = 680, Height = 300, Left = 56, Right = 230, Top = 16, Bottom = 44;

    /// <param name="html">Where the SVG goes.</param>
    /// <param name="series">Patient-level ε per site.</param>
    /// <param name="untrusted">Sites whose log failed verification: their legend entry says so.</param>
    public static void Append(StringBuilder html, SortedDictionary<string, List<EpsilonPoint>> series, IReadOnlySet<string> untrusted)
    {
        List<EpsilonPoint> all = [.. series.Values.SelectMany(p => p)];
        long minRound = all.Min(p => p.Round), maxRound = all.Max(p => p.Round);
        List<double> budgets = [.. all.Where(p => p.Budget is not null).Select(p => p.Budget!.Value).Distinct()];
        // A budget more than ten times every ε would flatten the lines at the bottom: then the axis follows ε and such budgets
        // are named in the legend and in a note instead of drawn.
        double maxEpsilon = all.Max(p => p.Epsilon);
        double drawable = budgets.Where(b => b <= 10 * maxEpsilon || maxEpsilon <= 0).DefaultIfEmpty(0).Max();
        double top = NiceCeiling(Math.Max(maxEpsilon, drawable) * 1.05);
        double plotRight = Width - Right;
        double span = (double)maxRound - minRound + 1;
        double X(double round) => Left + ((round - minRound + 0.5) / span * (plotRight - Left));
        double Y(double epsilon) => Height - Bottom - (epsilon / top * (Height - Top - Bottom));

        // The plot keeps its size; with many sites the picture grows downwards so every legend entry fits.
        double svgHeight = Math.Max(Height, Top + 6 + (34 * series.Count));
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture,
            $"<svg id=\"epsilon-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {Width} {svgHeight}\" width=\"{Width}\" height=\"{svgHeight}\" role=\"img\" aria-labelledby=\"epsilon-chart-title epsilon-chart-desc\">\n");
        svg.Append("<title id=\"epsilon-chart-title\">Patient-level ε spent by each site after each round, against its budget</title>\n");
        svg.Append("<desc id=\"epsilon-chart-desc\">").Append(E(Describe(series))).Append("</desc>\n");

        // Axes, grid and ticks.
        double step = NiceStep(top);
        for (double value = 0; value <= top + (step / 1000); value += step)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Y(value):F1}\" x2=\"{plotRight}\" y2=\"{Y(value):F1}\" stroke=\"#e5e5e5\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{Y(value) + 4:F1}\" font-size=\"11\" text-anchor=\"end\">{value:G4}</text>\n");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{plotRight}\" y2=\"{Height - Bottom}\" stroke=\"#444\"/>");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Height - Bottom}\" stroke=\"#444\"/>\n");
        // At most 13 ticks, whatever the rounds (a long loop variable would overflow and never end near long.MaxValue).
        double roundStep = Math.Max(1, Math.Ceiling(span / 12.0));
        for (int tick = 0; tick <= 12 && minRound + (tick * roundStep) <= maxRound; tick++)
        {
            long round = (long)(minRound + (tick * roundStep));
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{X(round):F1}\" y1=\"{Height - Bottom}\" x2=\"{X(round):F1}\" y2=\"{Height - Bottom + 4}\" stroke=\"#444\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(round):F1}\" y=\"{Height - Bottom + 16}\" font-size=\"11\" text-anchor=\"middle\">{round}</text>\n");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{(Left + plotRight) / 2:F0}\" y=\"{Height - 8}\" font-size=\"12\" text-anchor=\"middle\">round</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"14\" y=\"{(Top + Height - Bottom) / 2:F0}\" font-size=\"12\" transform=\"rotate(-90 14 {(Top + Height - Bottom) / 2:F0})\" text-anchor=\"middle\">patient-level ε (cumulative)</text>\n");

        // Budgets: one shared line, or one per site in its colour.
        List<string> names = [.. series.Keys];
        bool shared = budgets.Count == 1 && series.Values.All(p => p.All(e => e.Budget == budgets[0]));
        List<double> offScale = [.. budgets.Where(b => b > top).Order()];
        if (offScale.Count > 0)
        {
            svg.Append(CultureInfo.InvariantCulture,
                $"<text class=\"budget-off-scale\" x=\"{plotRight - 4}\" y=\"{Top + 12}\" font-size=\"11\" fill=\"#b00020\" text-anchor=\"end\">budget ε = {string.Join(", ", offScale.Select(b => b.ToString("G4", CultureInfo.InvariantCulture)))}: above this scale ↑</text>\n");
        }

        if (shared && budgets[0] <= top)
        {
            double y = Y(budgets[0]);
            svg.Append(CultureInfo.InvariantCulture,
                $"<g class=\"budget\"><line x1=\"{Left}\" y1=\"{y:F1}\" x2=\"{plotRight}\" y2=\"{y:F1}\" stroke=\"#b00020\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>" +
                $"<text x=\"{Left + 6}\" y=\"{y - 5:F1}\" font-size=\"11\" fill=\"#b00020\">budget ε = {budgets[0]:G4}</text></g>\n");
        }
        else if (!shared)
        {
            for (int i = 0; i < names.Count; i++)
            {
                foreach (IGrouping<double, EpsilonPoint> group in series[names[i]].Where(p => p.Budget <= top).GroupBy(p => p.Budget!.Value))
                {
                    double y = Y(group.Key);
                    svg.Append(CultureInfo.InvariantCulture,
                        $"<line class=\"budget\" x1=\"{X(group.Min(p => p.Round) - 0.5):F1}\" y1=\"{y:F1}\" x2=\"{X(group.Max(p => p.Round) + 0.5):F1}\" y2=\"{y:F1}\" stroke=\"{Color(i)}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"><title>{E(names[i])}: budget ε = {group.Key:G4}</title></line>\n");
                }
            }
        }

        // Series, widest first.
        for (int i = 0; i < names.Count; i++)
        {
            List<EpsilonPoint> points = [.. series[names[i]].OrderBy(p => p.Round)];
            double width = 2 + (2.5 * Math.Max(0, Math.Min(names.Count, 4) - 1 - i));
            string path = string.Join(' ', points.Select(p => string.Create(CultureInfo.InvariantCulture, $"{X(p.Round):F1},{Y(p.Epsilon):F1}")));
            svg.Append(CultureInfo.InvariantCulture, $"<g class=\"series\" data-site=\"{E(names[i])}\"><polyline fill=\"none\" stroke=\"{Color(i)}\" stroke-width=\"{width:F1}\" stroke-linejoin=\"round\" points=\"{path}\"/>\n");
            foreach (EpsilonPoint p in points)
            {
                string over = p.OverBudget ? " stroke=\"#b00020\" stroke-width=\"3\"" : string.Empty;
                svg.Append(CultureInfo.InvariantCulture,
                    $"<circle cx=\"{X(p.Round):F1}\" cy=\"{Y(p.Epsilon):F1}\" r=\"{(width / 2) + 2:F1}\" fill=\"{Color(i)}\"{over}><title>{E(names[i])}: ε {p.Epsilon:G4} after round {p.Round}{(p.Budget is { } b ? string.Create(CultureInfo.InvariantCulture, $" (budget {b:G4})") : string.Empty)}{(p.OverBudget ? " OVER BUDGET" : string.Empty)} — {E(p.Source.ToString())}</title></circle>\n");
            }

            svg.Append("</g>\n");
        }

        // Legend on the right: colour, site, last ε against its budget.
        for (int i = 0; i < names.Count; i++)
        {
            EpsilonPoint last = series[names[i]].MaxBy(p => p.Round)!;
            double y = Top + 6 + (34 * i);
            string against = last.Budget is { } budget ? string.Create(CultureInfo.InvariantCulture, $" of {budget:G4}") : " (no budget logged)";
            svg.Append(CultureInfo.InvariantCulture,
                $"<rect x=\"{plotRight + 16}\" y=\"{y:F0}\" width=\"12\" height=\"12\" fill=\"{Color(i)}\"/>" +
                $"<text x=\"{plotRight + 34}\" y=\"{y + 10:F0}\" font-size=\"12\" font-weight=\"600\">{E(names[i])}{(untrusted.Contains(names[i]) ? "<tspan fill=\"#b00020\"> (log FAILED)</tspan>" : string.Empty)}</text>" +
                $"<text x=\"{plotRight + 34}\" y=\"{y + 25:F0}\" font-size=\"11\"{(last.OverBudget ? " fill=\"#b00020\"" : string.Empty)}>ε {last.Epsilon:G4}{against} after round {last.Round}</text>\n");
        }

        svg.Append("</svg>");
        html.Append(svg);
    }

    /// <summary>The chart in words (the SVG's description for screen readers).</summary>
    internal static string Describe(SortedDictionary<string, List<EpsilonPoint>> series) =>
        string.Join(" ", series.Select(s =>
        {
            string points = string.Join(", ", s.Value.OrderBy(p => p.Round).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Epsilon:G4} after round {p.Round}")));
            double? budget = s.Value.LastOrDefault(p => p.Budget is not null)?.Budget;
            return string.Create(CultureInfo.InvariantCulture, $"{s.Key}: ε {points}; budget {(budget is { } b ? b.ToString("G4", CultureInfo.InvariantCulture) : "not logged")}.");
        }));

    private static string Color(int index) => Palette[index % Palette.Length];

    private static string E(string text) => Html.Encode(text);

    private static double NiceStep(double top)
    {
        double raw = top / 5;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double fraction = raw / magnitude;
        return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 2.5 ? 2.5 : fraction <= 5 ? 5 : 10) * magnitude;
    }

    private static double NiceCeiling(double value)
    {
        if (!(value > 0))
        {
            return 1;
        }

        double step = NiceStep(value);
        return Math.Ceiling(value / step) * step;
    }
}
