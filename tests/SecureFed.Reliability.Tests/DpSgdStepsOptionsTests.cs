using SecureFed.Aggregator;
using SecureFed.Privacy;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The aggregator's DP-SGD plan (<c>DpSgdSampleRate</c>, <c>LocalEpochs</c>, <c>DpSgdMaxSteps</c>) is checked at start-up by
/// the rule every agent applies to a round's announcement (<see cref="DpSgdSteps.Problem"/>): before, an implausible plan
/// passed start-up and the operator only learnt of it when every agent declined every round.
/// </summary>
public sealed class DpSgdStepsOptionsTests
{
    [Theory]
    [InlineData("1e-7", "7", "20")] // one epoch alone is 10,000,000 steps: the cap does not help, its batches are sampled up front
    [InlineData("1e-5", "50", "0")] // 50 × 100,000 steps, no cap
    [InlineData("0.0001", "1000", "0")] // 1000 × 10,000 steps
    public void Validate_PlanTheAgentsDecline_RefusedNamingTheSettings(string sampleRate, string localEpochs, string maxSteps)
    {
        AggregatorOptions options = Bind(new() { ["DpSgdSampleRate"] = sampleRate, ["LocalEpochs"] = localEpochs, ["DpSgdMaxSteps"] = maxSteps });

        string error = Assert.Single(options.Validate());

        Assert.StartsWith($"SecureFed:DpSgdSampleRate {options.DpSgdSampleRate:G4} with SecureFed:LocalEpochs {localEpochs} and SecureFed:DpSgdMaxSteps {maxSteps} is a DP-SGD plan every agent declines: ",
            error, StringComparison.Ordinal);
        Assert.EndsWith(DpSgdSteps.Problem(options.DpSgdSampleRate, options.LocalEpochs, options.DpSgdMaxSteps)!, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0.3", "7", "20")] // the defaults
    [InlineData("0.001", "1000", "0")] // exactly 1,000,000 steps
    [InlineData("1e-5", "50", "1")] // capped at one step, an epoch's 100,000 batches sampled up front
    [InlineData("1e-6", "1", "0")]
    public void Validate_PlanTheAgentsAccept_Valid(string sampleRate, string localEpochs, string maxSteps)
    {
        AggregatorOptions options = Bind(new() { ["DpSgdSampleRate"] = sampleRate, ["LocalEpochs"] = localEpochs, ["DpSgdMaxSteps"] = maxSteps });

        Assert.Null(DpSgdSteps.Problem(options.DpSgdSampleRate, options.LocalEpochs, options.DpSgdMaxSteps));
        Assert.Empty(options.Validate());
    }

    [Theory]
    [InlineData("DpSgdSampleRate", "0")]
    [InlineData("LocalEpochs", "1001")]
    [InlineData("DpSgdMaxSteps", "1000001")]
    public void Validate_SettingOutOfItsRange_OnlyTheRangeNamed(string name, string value)
    {
        // The plan is checked only with each setting in its range: one message per mistake, not two.
        string error = Assert.Single(Bind(new() { ["DpSgdSampleRate"] = "1e-7", [name] = value }).Validate());

        Assert.StartsWith($"SecureFed:{name} must be", error, StringComparison.Ordinal);
    }

    private static AggregatorOptions Bind(Dictionary<string, string?> extra) => AggregatorOptionsBinding.Bind(extra);
}
