using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// A database the CLI talks to (the aggregator cluster's PostgreSQL, a benchmark's) that fails is an error line naming
/// the cause and exit code 1, not a crash with a stack trace (the global handler of <see cref="CliApp"/>).
/// </summary>
public sealed class CliDatabaseErrorTests
{
    [Fact]
    public async Task BenchCoordinatorCommit_DatabaseRefusesTheConnection_ErrorLineNamingTheCauseExitOne()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        // Port 1 of the loopback address: nothing listens there, so the connection is refused at once.
        int code = await CliApp.RunAsync(
            ["bench", "coordinator-commit", "--parameters", "1000", "--versions", "1", "--connection-string", "Host=127.0.0.1;Port=1;Database=none;Username=none;Timeout=5"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        string error = stderr.ToString();
        Assert.Equal(CliApp.ExitFailure, code);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:1", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal); // no stack trace
    }
}
