using SecureFed.Audit;
using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// A real <c>securefed demo</c> process (the default model: TorchSharp and ONNX Runtime threads in native code) stopped by
/// a signal while its sites train, and between rounds: a clean stop with the exit code the signal gives, the line naming
/// the signal and what the output folder holds, no crash, and every audit log written so far still verifies.
/// </summary>
public sealed class DemoSignalTests : IDisposable
{
    private static readonly TimeSpan Hang = TimeSpan.FromMinutes(5);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-demo-signal-").FullName;

    [Fact]
    public async Task Demo_SigtermWhileTheSitesTrain_StopsCleanlyWith143AndVerifiableLogs()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        using CliProcess demo = StartDemo();
        await demo.WaitForOutputAsync("round 1 · opened", Hang);
        await Task.Delay(TimeSpan.FromSeconds(2)); // the sites fetched the model and train (the keys follow training)
        int code = await demo.TerminateAsync(Hang);

        Assert.True(code == CliApp.ExitTerminated, $"exit code {code}:\n{demo.Output}");
        Assert.Contains("securefed: stopping (SIGTERM)", demo.Output, StringComparison.Ordinal);
        Assert.Contains("Demo cancelled (SIGTERM):", demo.Output, StringComparison.Ordinal);
        AssertNoFailure(demo.Output);
        AssertLogsVerify(expectAtLeast: 1);
    }

    [Fact]
    public async Task Demo_CtrlCInTheSecondRound_StopsCleanlyWith130KeepingTheFirstRoundsLogs()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        using CliProcess demo = StartDemo();
        await demo.WaitForOutputAsync("round 2 · opened", Hang);
        int code = await demo.InterruptAsync(Hang);

        Assert.True(code == CliApp.ExitCancelled, $"exit code {code}:\n{demo.Output}");
        Assert.Contains("Demo cancelled (Ctrl-C):", demo.Output, StringComparison.Ordinal);
        Assert.Contains("round 1 · completed", demo.Output, StringComparison.Ordinal);
        AssertNoFailure(demo.Output);
        AssertLogsVerify(expectAtLeast: 4); // the aggregator and the three sites, each with round 1 in it
        string aggregatorLog = string.Concat(Directory.EnumerateFiles(Path.Combine(_dir, "aggregator-data", "audit"), "*.jsonl").Select(File.ReadAllText));
        Assert.Contains($"\"{AuditEvents.RoundCompleted}\"", aggregatorLog, StringComparison.Ordinal);
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

    private CliProcess StartDemo()
        => CliProcess.Start("demo", "--corpus", "synthetic", "--out", _dir, "--rounds", "3", "--sentences", "60", "--local-epochs", "1", "--no-comparison");

    private static void AssertNoFailure(string output)
    {
        foreach (string failure in new[] { "Unhandled exception", "Fatal error", "Segmentation fault", "Aborted", "stopped because of an error", "local training failed", "Demo stopped", " failed" })
        {
            Assert.False(output.Contains(failure, StringComparison.Ordinal), $"'{failure}' in the output:\n{output}");
        }
    }

    private void AssertLogsVerify(int expectAtLeast)
    {
        string[] logs = [.. Directory.EnumerateDirectories(_dir, "audit", SearchOption.AllDirectories).Where(d => Directory.EnumerateFiles(d, "*.jsonl").Any())];
        Assert.True(logs.Length >= expectAtLeast, $"{logs.Length} audit logs under {_dir}: {string.Join(", ", logs)}");
        foreach (string log in logs)
        {
            AuditVerification v = AuditVerifier.Verify(log);
            Assert.True(v.Ok, $"{log}: {v.FirstProblem}");
        }
    }
}
