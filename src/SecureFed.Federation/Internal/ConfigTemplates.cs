using System.Net;
using System.Text;
using System.Text.Json;

namespace SecureFed.Federation.Internal;

/// <summary>The <c>aggregator.json</c> / <c>agent.json</c> templates (Microsoft.Extensions.Configuration, section <c>SecureFed</c>).</summary>
internal static class ConfigTemplates
{
    private static readonly JsonWriterOptions s_options = new() { Indented = true };

    public static string AggregatorUrl(string host)
    {
        string h = IPAddress.TryParse(host, out IPAddress? ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? $"[{host}]"
            : host;
        return $"https://{h}:{KitFiles.DefaultPort}";
    }

    public static string Aggregator(string federation, string host) => Write(w =>
    {
        w.WriteString("Federation", federation);
        w.WriteString("Listen", AggregatorUrl(host));
        w.WriteString("KitDirectory", ".");
        w.WriteString("DataDirectory", "./data");
        w.WriteNumber("Rounds", 10);
        w.WriteNumber("MinSites", 2);
        w.WriteNumber("Threshold", 0);
        w.WriteNumber("StageTimeoutSeconds", 120);
        Raw(w, "EpsilonBudget", "10.0");
        Raw(w, "Delta", "1e-5");
    });

    public static string Agent(string site, string host) => Write(w =>
    {
        w.WriteString("Site", site);
        w.WriteString("Aggregator", AggregatorUrl(host));
        w.WriteString("KitDirectory", ".");
        w.WriteString("DataDirectory", "./data");
        w.WriteString("TrainFile", string.Empty);
        w.WriteString("DevFile", string.Empty);
        w.WriteString("Device", "auto");
        Raw(w, "EpsilonBudget", "8.0");
        Raw(w, "Delta", "1e-5");
    });

    private static void Raw(Utf8JsonWriter w, string name, string json)
    {
        w.WritePropertyName(name);
        w.WriteRawValue(json);
    }

    private static string Write(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, s_options))
        {
            w.WriteStartObject();
            w.WriteStartObject("SecureFed");
            body(w);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }
}
