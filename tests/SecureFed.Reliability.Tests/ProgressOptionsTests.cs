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

/// <summary>
/// <c>SecureFed:StragglerWaitFactor</c>, <c>StragglerMinWaitSeconds</c> and <c>StageStragglerMinWaitSeconds</c> (threat
/// model C8): the defaults and "off" are valid; a negative, non-finite or huge factor and a minimum wait out of range are
/// refused naming the setting.
/// </summary>
public sealed class StragglerOptionsTests
{
    [Theory]
    [InlineData(3, 60, 30)]   // the defaults
    [InlineData(0, 60, 30)]   // off
    [InlineData(0.5, 1, 1)]
    [InlineData(1000, 86400, 86400)]
    public void Valid(double factor, int minWait, int stageMinWait)
    {
        Assert.Empty(Options(factor, minWait, stageMinWait).Validate());
    }

    [Fact]
    public void Defaults_ThreeSixtyAndThirty()
    {
        var options = new AggregatorOptions();

        Assert.Equal((3.0, 60, 30), (options.StragglerWaitFactor, options.StragglerMinWaitSeconds, options.StageStragglerMinWaitSeconds));
    }

    [Theory]
    [InlineData(0, "SecureFed:StageStragglerMinWaitSeconds must be between 1 and 86400, got 0.")]
    [InlineData(86401, "SecureFed:StageStragglerMinWaitSeconds must be between 1 and 86400, got 86401.")]
    public void StageMinWaitOutOfRange_RefusedNamingTheSetting(int stageMinWait, string expected)
    {
        string error = Assert.Single(Options(3, 60, stageMinWait).Validate());

        Assert.Equal(expected, error);
    }

    [Theory]
    [InlineData(-0.1, 60, "SecureFed:StragglerWaitFactor must be between 0 (off: wait for every member until TrainingTimeoutSeconds, and at later stages until StageTimeoutSeconds) and 1000, got -0.1.")]
    [InlineData(double.NaN, 60, "SecureFed:StragglerWaitFactor must be between 0")]
    [InlineData(double.PositiveInfinity, 60, "SecureFed:StragglerWaitFactor must be between 0")]
    [InlineData(1000.5, 60, "got 1000.5.")]
    [InlineData(3, 0, "SecureFed:StragglerMinWaitSeconds must be between 1 and 86400, got 0.")]
    [InlineData(3, 86401, "SecureFed:StragglerMinWaitSeconds must be between 1 and 86400, got 86401.")]
    public void Refused_NamingTheSetting(double factor, int minWait, string expected)
    {
        string error = Assert.Single(Options(factor, minWait).Validate());

        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    private static AggregatorOptions Options(double factor, int minWait, int stageMinWait = AggregatorOptions.DefaultStageStragglerMinWaitSeconds) => new()
    {
        Federation = "fed",
        ModelSpecSha256 = new string('a', 64),
        StragglerWaitFactor = factor,
        StragglerMinWaitSeconds = minWait,
        StageStragglerMinWaitSeconds = stageMinWait,
    };
}
