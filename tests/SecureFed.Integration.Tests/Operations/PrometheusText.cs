using System.Globalization;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>A minimal reader of the Prometheus text exposition format: one sample per line, <c>name{labels} value</c>.</summary>
internal sealed class PrometheusText
{
    private PrometheusText(IReadOnlyList<(string Name, string Labels, double Value)> samples) => Samples = samples;

    public IReadOnlyList<(string Name, string Labels, double Value)> Samples { get; }

    public static PrometheusText Parse(string text)
    {
        var samples = new List<(string, string, double)>();
        foreach (string raw in text.Split('\n'))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            int brace = line.IndexOf('{', StringComparison.Ordinal);
            // name{labels} value [timestamp]
            int valueAt = brace >= 0 ? line.IndexOf("} ", StringComparison.Ordinal) + 2 : line.IndexOf(' ', StringComparison.Ordinal) + 1;
            string name = brace >= 0 ? line[..brace] : line[..(valueAt - 1)];
            string labels = brace >= 0 ? line[(brace + 1)..(valueAt - 2)] : string.Empty;
            string value = line[valueAt..].Split(' ')[0];
            samples.Add((name, labels, value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                _ => double.Parse(value, CultureInfo.InvariantCulture),
            }));
        }

        return new PrometheusText(samples);
    }

    /// <summary>The sum of the samples named <paramref name="name"/> whose labels contain every one of <paramref name="labels"/> (<c>key="value"</c>).</summary>
    public double Sum(string name, params string[] labels)
        => Samples.Where(s => s.Name == name && labels.All(l => s.Labels.Contains(l, StringComparison.Ordinal))).Sum(s => s.Value);

    public bool Has(string name) => Samples.Any(s => s.Name == name);
}
