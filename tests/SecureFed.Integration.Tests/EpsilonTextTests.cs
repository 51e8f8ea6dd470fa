using SecureFed.Experiments;
using SecureFed.PrivacyAudit;

namespace SecureFed.Integration.Tests;

/// <summary>ε as the experiment, the privacy audit and the demo show it (never a small ε as 0), and the smallest ε they accept.</summary>
public sealed class EpsilonTextTests
{
    [Theory]
    [InlineData(8, "8")]
    [InlineData(2.5, "2.5")]
    [InlineData(1.25, "1.25")]
    [InlineData(0.5, "0.5")]
    [InlineData(0.125, "0.125")]
    [InlineData(0.013, "0.013")]
    [InlineData(1e-6, "1e-06")]
    public void Format_SmallAndLargeEpsilon_ShownWithoutRoundingToZero(double epsilon, string expected)
    {
        Assert.Equal(expected, EpsilonText.Format(epsilon));
    }

    [Fact]
    public void ExperimentTable_SmallEpsilon_ShownHonestly()
    {
        var arm = new ArmSummary("federated + DP-SGD ε=0.013", "federated_dp", 0.013, 0.1, 0, 0.1, 0.1, new Dictionary<string, double>(), [], 1);
        var report = new ExperimentReport(new Dictionary<string, object>(), "data", [], [], [arm], new Dictionary<string, string>());

        string table = ExperimentTable.Format(report);

        Assert.Contains(" 0.013 ", table, StringComparison.Ordinal);
        Assert.DoesNotContain(" 0.01 ", table, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1e-6, "--epsilon 1e-06 is below the minimum ε of 0.01")]
    [InlineData(0.009, "--epsilon 0.009 is below the minimum ε of 0.01")]
    [InlineData(0.0099999, "--epsilon 0.0099999 is below the minimum ε of 0.01")]
    public void ExperimentOptionsValidate_EpsilonBelowMinimum_RefusedNamingTheValue(double epsilon, string expected)
    {
        var options = new ExperimentOptions { DataDirectory = "corpus", Epsilons = [3, epsilon] };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains("δ", error.Message, StringComparison.Ordinal);
    }

    /// <summary>ε = 1e308 used to run the whole arm and then fail writing its model: the name held ε's 309 digits.</summary>
    [Theory]
    [InlineData(1e308, "--epsilon 1e+308 is above the maximum ε of 1000000")]
    [InlineData(1000000.5, "--epsilon 1000000.5 is above the maximum ε of 1000000")]
    public void ExperimentOptionsValidate_EpsilonAboveMaximum_RefusedNamingTheValue(double epsilon, string expected)
    {
        var options = new ExperimentOptions { DataDirectory = "corpus", Epsilons = [8, epsilon] };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains("an arm without DP beside the DP arms", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Problem_MaximumItself_Accepted()
    {
        Assert.Null(EpsilonText.Problem("--epsilon", EpsilonText.Maximum, 1e-5));
        Assert.Equal("1000000", EpsilonText.Format(EpsilonText.Maximum));
    }

    [Fact]
    public void PrivacyAuditOptionsValidate_EpsilonBelowMinimum_Refused()
    {
        var options = new PrivacyAuditOptions { Experiment = new ExperimentOptions { DataDirectory = "corpus" }, Epsilons = [1e-6] };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--epsilon 1e-06 is below the minimum ε of 0.01", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_EpsilonBelowMinimum_UsageError()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        string output = Path.Combine(Path.GetTempPath(), "securefed-eps-" + Guid.NewGuid().ToString("N"));

        int code = await SecureFed.Cli.CliApp.RunAsync(["demo", "--epsilon", "1e-6", "--out", output], stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));

        Assert.Equal(SecureFed.Cli.CliApp.ExitUsage, code);
        Assert.Contains("--epsilon 1e-06 is below the minimum ε of 0.01", stderr.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }
}
