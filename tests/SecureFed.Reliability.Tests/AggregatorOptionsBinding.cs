using Microsoft.Extensions.Configuration;
using SecureFed.Aggregator;

namespace SecureFed.Reliability.Tests;

/// <summary>Aggregator settings as configuration binds them, for the options tests.</summary>
internal static class AggregatorOptionsBinding
{
    /// <summary>
    /// The minimal valid aggregator settings (federation, kit, model spec hash) plus <paramref name="extra"/> (keys without
    /// the <c>SecureFed:</c> prefix), bound into <see cref="AggregatorOptions"/> as the service binds them.
    /// </summary>
    public static AggregatorOptions Bind(Dictionary<string, string?> extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = "fed",
            ["SecureFed:KitDirectory"] = "kit",
            ["SecureFed:ModelSpecSha256"] = new string('a', 64),
        };
        foreach ((string key, string? value) in extra)
        {
            settings["SecureFed:" + key] = value;
        }

        var options = new AggregatorOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AggregatorOptions.Section).Bind(options);
        return options;
    }
}
