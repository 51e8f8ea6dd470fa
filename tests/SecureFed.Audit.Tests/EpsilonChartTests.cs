using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit.Tests;

public sealed partial class EpsilonChartTests
{
    [Fact]
    public void Append_TwelveSites_EveryLegendEntryInsideThePicture()
    {
        var series = new SortedDictionary<string, List<EpsilonPoint>>(StringComparer.Ordinal);
        for (int i = 0; i < 12; i++)
        {
            string site = "site-" + i.ToString("D2", CultureInfo.InvariantCulture);
            series[site] = [new EpsilonPoint(1, 1 + (0.1 * i), 1e-5, 8, new LogRef(site, 5)), new EpsilonPoint(2, 2 + (0.1 * i), 1e-5, 8, new LogRef(site, 9))];
        }

        var html = new StringBuilder();
        EpsilonChart.Append(html, series, new HashSet<string>(StringComparer.Ordinal));

        string svg = html.ToString();
        double height = double.Parse(HeightAttribute().Match(svg).Groups[1].Value, CultureInfo.InvariantCulture);
        double[] legendTops = [.. LegendRect().Matches(svg).Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))];
        Assert.Equal(12, legendTops.Length);
        Assert.True(legendTops.Max() + 30 <= height, $"last legend entry at {legendTops.Max()} in a picture {height} high");
        Assert.Equal(12, Regex.Count(svg, "<g class=\"series\""));
    }

    [Fact]
    public void Append_SitesWithDifferentBudgets_OneDashedBudgetLinePerSite()
    {
        var series = new SortedDictionary<string, List<EpsilonPoint>>(StringComparer.Ordinal)
        {
            ["a"] = [new EpsilonPoint(1, 2, 1e-5, 4, new LogRef("a", 3))],
            ["b"] = [new EpsilonPoint(1, 3, 1e-5, 6, new LogRef("b", 3))],
        };
        var html = new StringBuilder();

        EpsilonChart.Append(html, series, new HashSet<string>(StringComparer.Ordinal));

        string svg = html.ToString();
        Assert.Contains("<title>a: budget ε = 4</title>", svg, StringComparison.Ordinal);
        Assert.Contains("<title>b: budget ε = 6</title>", svg, StringComparison.Ordinal);
        Assert.DoesNotContain("<g class=\"budget\">", svg, StringComparison.Ordinal);
    }

    [GeneratedRegex("<svg [^>]*height=\"([0-9.]+)\"")]
    private static partial Regex HeightAttribute();

    [GeneratedRegex("<rect x=\"[0-9.]+\" y=\"([0-9.]+)\" width=\"12\" height=\"12\"")]
    private static partial Regex LegendRect();
}
