using SecureFed.Aggregator;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <c>SecureFed:ProgressIntervalSeconds</c> and <c>ProgressSilenceSeconds</c> as validated at start-up (docs/PROTOCOL.md
/// "Training progress"): the defaults and "off" are valid; a silence shorter than three intervals, or an interval out
/// of range, is refused naming the setting.
/// </summary>
public sealed class ProgressOptionsTests
{
    [Theory]
    [InlineData(10, 60)]   // the defaults
    [InlineData(1, 3)]     // three reports missed
    [InlineData(0, 0)]     // off: the silence is not read
    [InlineData(3600, 86400)]
    public void Valid(int interval, int silence)
    {
        Assert.Empty(Options(interval, silence).Validate());
    }

    [Fact]
    public void Defaults_TenAndSixty()
    {
        var options = new AggregatorOptions();

        Assert.Equal(10, options.ProgressIntervalSeconds);
        Assert.Equal(60, options.ProgressSilenceSeconds);
    }

    [Theory]
    [InlineData(10, 29, "SecureFed:ProgressSilenceSeconds must be between 3 × ProgressIntervalSeconds (30")]
    [InlineData(10, 86401, "SecureFed:ProgressSilenceSeconds must be between 3 × ProgressIntervalSeconds (30")]
    [InlineData(-1, 60, "ProgressIntervalSeconds")]
    [InlineData(3601, 86400, "ProgressIntervalSeconds")]
    public void Refused_NamingTheSetting(int interval, int silence, string expected)
    {
        string error = Assert.Single(Options(interval, silence).Validate());

        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    private static AggregatorOptions Options(int interval, int silence) => new()
    {
        Federation = "fed",
        ModelSpecSha256 = new string('a', 64),
        ProgressIntervalSeconds = interval,
        ProgressSilenceSeconds = silence,
    };
}
