using SecureFed.Audit;
using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>The real demo (TorchSharp tagger, mTLS gRPC, DP, audit) on a tiny setting, so CI proves it runs.</summary>
public sealed class DemoSmokeTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-demo-smoke-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task Demo_TwoRoundsWithADropout_WritesModelChartReportAndVerifiedLogs()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["demo", "--out", _dir, "--rounds", "2", "--sentences", "60", "--local-epochs", "1", "--drop-site-at", "mask", "--drop-round", "1"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(8));

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.True(File.Exists(Path.Combine(_dir, "rounds.png")));
        Assert.True(new FileInfo(Path.Combine(_dir, "rounds.png")).Length > 1000);
        Assert.True(File.Exists(Path.Combine(_dir, "audit-report.html")));
        Assert.True(File.Exists(Path.Combine(_dir, "fused-model", "model.json")));
        Assert.Contains("dropped: site-jp", stdout.ToString(), StringComparison.Ordinal);
        foreach (string log in new[] { "aggregator-data/audit", "agents/site-de/audit", "agents/site-fr/audit", "agents/site-jp/audit" })
        {
            AuditVerification v = AuditVerifier.Verify(Path.Combine(_dir, log));
            Assert.True(v.Ok, v.FirstProblem);
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}
