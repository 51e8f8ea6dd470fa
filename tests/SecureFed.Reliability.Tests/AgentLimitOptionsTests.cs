using Microsoft.Extensions.Configuration;
using SecureFed.Agent;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A hospital's own limits at their extremes: <c>MinDpSgdNoiseMultiplier</c> / <c>MinSiteNoiseMultiplier</c> = NaN
/// once started and silently accepted any announced noise (every comparison with NaN is false), and a negative
/// <c>MaxRounds</c> was silently taken as 0 (no limit). Each is now refused at start-up, naming the setting.
/// </summary>
public sealed class AgentLimitOptionsTests
{
    [Theory]
    [InlineData("MinDpSgdNoiseMultiplier", "0")]
    [InlineData("MinDpSgdNoiseMultiplier", "1e6")]
    [InlineData("MinSiteNoiseMultiplier", "0")]
    [InlineData("MinSiteNoiseMultiplier", "2.5")]
    [InlineData("MaxRounds", "0")]
    [InlineData("MaxRounds", "3")]
    [InlineData("MaxStageTimeoutSeconds", "1")]
    [InlineData("MaxStageTimeoutSeconds", "86400")]
    [InlineData("AllowedSliceHosts", "10.0.0.7, silo-2.example.org,[::1]")]
    public void Validate_LimitInRange_Valid(string setting, string value)
    {
        Assert.Empty(Bind(setting, value).Validate());
    }

    [Theory]
    [InlineData("MinDpSgdNoiseMultiplier", "NaN")]
    [InlineData("MinDpSgdNoiseMultiplier", "Infinity")]
    [InlineData("MinDpSgdNoiseMultiplier", "-0.5")]
    [InlineData("MinSiteNoiseMultiplier", "NaN")]
    [InlineData("MinSiteNoiseMultiplier", "-Infinity")]
    [InlineData("MinSiteNoiseMultiplier", "Infinity")]
    public void Validate_NoiseMinimumNotAFiniteNonNegativeNumber_RefusedNamingTheSettingAndValue(string setting, string value)
    {
        string error = Assert.Single(Bind(setting, value).Validate());

        Assert.Equal($"SecureFed:{setting} must be 0 or a positive number (the smallest noise multiplier this site accepts), got {value}.", error);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("-2147483648")]
    public void Validate_MaxRoundsNegative_RefusedNamingTheSettingAndValue(string value)
    {
        string error = Assert.Single(Bind("MaxRounds", value).Validate());

        Assert.Equal($"SecureFed:MaxRounds must be 0 (until the federation finishes) or the number of rounds to take part in, got {value}.", error);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("86401")]
    public void Validate_MaxStageTimeoutSecondsOutOfRange_RefusedNamingTheSettingAndValue(string value)
    {
        string error = Assert.Single(Bind("MaxStageTimeoutSeconds", value).Validate());

        Assert.Equal($"SecureFed:MaxStageTimeoutSeconds must be between 1 and 86400, got {value}.", error);
    }

    [Fact]
    public void MaxStageTimeoutSeconds_Unset_TheAggregatorsOwnBoundOfAnHour()
    {
        Assert.Equal(3_600, new AgentOptions().MaxStageTimeoutSeconds);
    }

    [Theory]
    [InlineData("https://silo-2:7444")]
    [InlineData("silo-2:7444")]
    [InlineData("10.0.0.0/33")]
    public void Validate_AllowedSliceHostNotAHost_RefusedNamingTheSettingAndEntry(string entry)
    {
        string error = Assert.Single(Bind("AllowedSliceHosts", "10.0.0.7, " + entry).Validate());

        Assert.Equal($"SecureFed:AllowedSliceHosts must list host names, IP addresses or IP networks in CIDR form (10.0.0.0/24; no scheme, port or path), separated by commas, got '{entry}'.", error);
    }

    /// <summary>
    /// Slice endpoints are matched with IP addresses in canonical form and against CIDR networks (silos advertise IP
    /// addresses; diff review of session 59), names as written; anything else is declined naming the host.
    /// </summary>
    [Theory]
    [InlineData("https://10.0.0.5:7443", "10.0.0.0/24", null)]
    [InlineData("https://10.0.1.5:7443", "10.0.0.0/24", "10.0.1.5")]
    [InlineData("https://[0:0::1]:7443", "", null)]
    [InlineData("https://127.1:7443", "", null)]
    [InlineData("https://[fd00::7]:7443", "fd00::/64", null)]
    [InlineData("https://silo-2:7443", "SILO-2", null)]
    [InlineData("https://silo-3:7443", "silo-2, 10.0.0.0/8", "silo-3")]
    public void SliceHostProblem_CanonicalIpAndCidr_AllowedOrDeclinedNamingTheHost(string endpoint, string allowed, string? declinedHost)
    {
        var slices = new SecureFed.Wire.V1.SliceUploads { SliceSize = 10 };
        slices.Endpoints.Add(endpoint);
        var options = new AgentOptions { AllowedSliceHosts = allowed };
        Assert.DoesNotContain(options.Validate(), e => e.Contains("AllowedSliceHosts", StringComparison.Ordinal));

        string? problem = AgentRunner.SliceHostProblem(slices, [new Uri("https://127.0.0.1:7443"), new Uri("https://[::1]:7443")], options.ParsedAllowedSliceHosts);

        if (declinedHost is null)
        {
            Assert.Null(problem);
        }
        else
        {
            Assert.Contains($"is on host '{declinedHost}', which is neither the aggregator's", problem, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ParsedAllowedSliceHosts_EntriesTrimmedAndIPv6BracketsRemoved()
    {
        Assert.Equal(["10.0.0.7", "silo-2", "::1"], Bind("AllowedSliceHosts", " 10.0.0.7 ,silo-2,, [::1]").ParsedAllowedSliceHosts);
        Assert.Empty(new AgentOptions().ParsedAllowedSliceHosts);
    }

    private static AgentOptions Bind(string setting, string value)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Site"] = "site-a",
            ["SecureFed:Aggregator"] = "https://127.0.0.1:1",
            [$"SecureFed:{setting}"] = value,
        };
        var options = new AgentOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AgentOptions.Section).Bind(options);
        return options;
    }
}
