using System.Text.Json;
using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary><c>securefed privacy audit</c> through the CLI: the table, the --json last line, and usage errors.</summary>
public sealed class PrivacyAuditCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-privacy-audit-cli-").FullName;

    [Fact]
    public async Task PrivacyAudit_TinyCorpusNoDpOnly_PrintsTableAndEndsWithJsonArms()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 90, eval: 30);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["privacy", "audit", "--data", corpus, "--epsilon", "none", "--rounds", "1", "--canaries", "2", "--repeats", "3",
             "--candidates", "20", "--audit-canaries", "10", "--audit-sentences", "10", "--group-canaries", "4", "--group-size", "2", "--reference", "initial",
             "--dp-optimizer", "sgd", "--dp-lr", "0.5", "--grad-clip", "8", "--sample-rate", "0.25", "--dp-steps", "2", "--out", Path.Combine(_dir, "out"), "--json"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        string[] lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        using JsonDocument summary = JsonDocument.Parse(lines[^1]);
        JsonElement arm = Assert.Single(summary.RootElement.GetProperty("arms").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, arm.GetProperty("epsilon").ValueKind);
        Assert.InRange(arm.GetProperty("mia_auc").GetDouble(), 0, 1);
        Assert.True(arm.GetProperty("exposure_mean").GetDouble() >= 0);
        Assert.True(arm.GetProperty("empirical_epsilon_lower_bound").GetDouble() >= 0);
        Assert.True(arm.GetProperty("empirical_epsilon_lower_bound_group").GetDouble() >= 0);
        Assert.InRange(arm.GetProperty("mia_auc_uncalibrated").GetDouble(), 0, 1);
        Assert.Contains("federated (secure aggregation)", stdout.ToString(), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(_dir, "out", "privacy-audit.json")));
    }

    [Fact]
    public async Task PrivacyAudit_ZeroRepeats_ExitsWithUsageErrorNamingTheOption()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 10, eval: 5);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["privacy", "audit", "--data", corpus, "--repeats", "0", "--out", Path.Combine(_dir, "out")],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, code);
        Assert.Contains("--repeats", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrivacyAudit_UnknownDpOptimizer_ExitsWithUsageErrorNamingTheOption()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 10, eval: 5);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["privacy", "audit", "--data", corpus, "--dp-optimizer", "rmsprop", "--out", Path.Combine(_dir, "out")],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, code);
        Assert.Contains("--dp-optimizer", stderr.ToString(), StringComparison.Ordinal);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
