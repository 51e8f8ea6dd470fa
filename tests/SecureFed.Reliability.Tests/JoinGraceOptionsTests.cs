using Microsoft.Extensions.Configuration;
using SecureFed.Aggregator;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <c>SecureFed:JoinGraceSeconds</c> at its extremes: a grace beyond TimeSpan's range once passed start-up and crashed
/// the aggregator with an OverflowException as soon as <c>MinSites</c> of more provisioned sites had joined (the agents
/// were told the federation had finished); it is now refused at start-up, naming the setting and its value.
/// </summary>
public sealed class JoinGraceOptionsTests
{
    [Theory]
    [InlineData("2")]
    [InlineData("0.5")]
    [InlineData("86400")]
    public void Validate_JoinGraceInRange_Valid(string value)
    {
        Assert.Empty(Bind(value).Validate());
    }

    [Theory]
    [InlineData("1e308")]
    [InlineData("1E12")]
    [InlineData("86401")]
    [InlineData("Infinity")]
    [InlineData("NaN")]
    [InlineData("0")]
    [InlineData("-1")]
    public void Validate_JoinGraceOutOfRange_RefusedNamingTheSettingAndValue(string value)
    {
        string error = Assert.Single(Bind(value).Validate());

        Assert.StartsWith("SecureFed:JoinGraceSeconds must be a positive number of seconds, at most 86400, got ", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_JoinGraceAccepted_ConvertsToATimeSpan()
    {
        AggregatorOptions options = Bind("86400");

        Assert.Empty(options.Validate());
        Assert.Equal(TimeSpan.FromDays(1), TimeSpan.FromSeconds(options.JoinGraceSeconds));
    }

    private static AggregatorOptions Bind(string grace)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = "fed",
            ["SecureFed:KitDirectory"] = "kit",
            ["SecureFed:ModelSpecSha256"] = new string('a', 64),
            ["SecureFed:JoinGraceSeconds"] = grace,
        };
        var options = new AggregatorOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AggregatorOptions.Section).Bind(options);
        return options;
    }
}
