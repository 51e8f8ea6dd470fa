using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using SecureFed.Aggregator;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <c>SecureFed:KeepModelVersions</c> as configured: unset keeps every model version, a positive count is valid, and a
/// negative or non-integer value is refused at start-up with the setting and the value named.
/// </summary>
public sealed class KeepModelVersionsOptionsTests
{
    [Fact]
    public void AggregatorOptions_KeepModelVersionsUnset_ZeroKeepsEveryVersionAndValid()
    {
        AggregatorOptions options = Bind(null);

        Assert.Equal(0, options.KeepModelVersions);
        Assert.Empty(options.Validate());
    }

    [Theory]
    [InlineData("1", 1)]
    [InlineData("3", 3)]
    [InlineData("1000", 1000)]
    public void AggregatorOptions_KeepModelVersionsPositive_BoundAndValid(string value, int expected)
    {
        AggregatorOptions options = Bind(value);

        Assert.Equal(expected, options.KeepModelVersions);
        Assert.Empty(options.Validate());
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("-100")]
    public void AggregatorOptions_KeepModelVersionsNegative_RefusedNamingTheSettingAndValue(string value)
    {
        string error = Assert.Single(Bind(value).Validate());

        Assert.Equal($"SecureFed:KeepModelVersions must be 0 (keep every model version) or the number of newest model versions to keep (at least 1), got {value}.", error);
    }

    [Fact]
    public void AggregatorHost_KeepModelVersionsNegative_StartUpFailsNamingTheSettingAndValue()
    {
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(Settings("-2")).Build();

        var ex = Assert.Throws<OptionsValidationException>(() => AggregatorHost.Build(configuration, initialModel: null));

        Assert.Contains("SecureFed:KeepModelVersions must be 0", ex.Message, StringComparison.Ordinal);
        Assert.Contains("got -2", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("two")]
    [InlineData("2.5")]
    public void AggregatorHost_KeepModelVersionsNotAnInteger_StartUpFailsNamingTheSettingAndValue(string value)
    {
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(Settings(value)).Build();

        Exception ex = Record.Exception(() => AggregatorHost.Build(configuration, initialModel: null))!;

        Assert.NotNull(ex);
        string messages = ex.ToString();
        Assert.Contains("SecureFed:KeepModelVersions", messages, StringComparison.Ordinal);
        Assert.Contains($"'{value}'", messages, StringComparison.Ordinal);
    }

    private static Dictionary<string, string?> Settings(string? keep)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = "fed",
            ["SecureFed:KitDirectory"] = "kit",
            ["SecureFed:ModelSpecSha256"] = new string('a', 64),
        };
        if (keep is not null)
        {
            settings["SecureFed:KeepModelVersions"] = keep;
        }

        return settings;
    }

    private static AggregatorOptions Bind(string? keep)
    {
        var options = new AggregatorOptions();
        new ConfigurationBuilder().AddInMemoryCollection(Settings(keep)).Build().GetSection(AggregatorOptions.Section).Bind(options);
        return options;
    }
}
