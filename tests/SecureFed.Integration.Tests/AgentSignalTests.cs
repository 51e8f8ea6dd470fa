using System.Diagnostics;
using System.Text;
using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Ctrl-C (SIGINT, sent with kill -INT; when idle twice at once, as `timeout -s INT` sends it) to a real <c>securefed agent</c> process, idle and during its first round: a
/// clean stop with exit code 130, one info line, no training failure in its output or audit log; then to the aggregator,
/// whose round is not done: 130 too.
/// </summary>
public sealed class AgentSignalTests : IDisposable
{
    private static readonly TimeSpan Hang = TimeSpan.FromMinutes(4);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-signal-").FullName;

    [Fact]
    public async Task Agent_SigintWhileWaitingThenWhileInARound_ExitsCleanlyWith130()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        string kits = Path.Combine(_dir, "fed");
        using (var stdout = new StringWriter())
        using (var stderr = new StringWriter())
        {
            int provisioned = await CliApp.RunAsync(["provision", "--out", kits, "--federation", "signal", "--sites", "site-a,site-b", "--aggregator-host", "127.0.0.1"], stdout, stderr, CancellationToken.None).WaitAsync(Hang);
            Assert.True(provisioned == CliApp.ExitOk, stderr.ToString());
        }

        string address = $"https://127.0.0.1:{SecureFed.Cluster.Bench.LoopbackPorts.Next()}";
        using CliProcess aggregator = CliProcess.Start("aggregator", "--config", Path.Combine(kits, "aggregator", "aggregator.json"), $"--SecureFed:Listen={address}", "--SecureFed:MinSites=2", "--SecureFed:Rounds=1");
        await aggregator.WaitForOutputAsync("aggregator listening on", Hang);

        // Idle: site-a alone, so no round opens; it long-polls the aggregator. Stopped as `timeout -s INT` stops it, with
        // SIGINT to the process and then its group, at once: one request, a clean stop (it was taken as a second Ctrl-C,
        // which exits at once, leaving the agent's last audit lines unsigned; CLI crash hunt, session 57).
        using (CliProcess idle = StartAgent(kits, "site-a", address))
        {
            await idle.WaitForOutputAsync("Application started", Hang);
            int code = await idle.SignalTwiceAsync("INT", Hang, together: true);

            Assert.True(code == CliApp.ExitCancelled, $"exit code {code}:\n{idle.Output}");
            Assert.True(idle.Output.Contains("site-a: stopped by the operator", StringComparison.Ordinal), idle.Output);
            // Its configuration names no TrainFile (as provisioned): said at start (CLI crash hunt, session 57).
            Assert.True(idle.Output.Contains("site-a: SecureFed:TrainFile is not set, so this agent trains on SecureFed's built-in synthetic clinical corpus (60 sentences", StringComparison.Ordinal), idle.Output);
            Assert.True(idle.Output.Contains("securefed: stopping (SIGINT); press Ctrl-C again to exit at once", StringComparison.Ordinal), idle.Output);
            Assert.DoesNotContain("stopped because of an error", idle.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("agent site-a stopped:", idle.Output, StringComparison.Ordinal);
        }

        // In a round: with site-b the round opens; Ctrl-C once site-a joined it (it trains next).
        using CliProcess other = StartAgent(kits, "site-b", address);
        using (CliProcess busy = StartAgent(kits, "site-a", address))
        {
            await busy.WaitForOutputAsync("site-a: joined round", Hang);
            int code = await busy.InterruptAsync(Hang);

            Assert.True(code == CliApp.ExitCancelled, $"exit code {code}:\n{busy.Output}");
            Assert.DoesNotContain("local training failed", busy.Output, StringComparison.Ordinal);
            // Stopped in training it declines as stopped (stopped while it fetched the model, it just leaves): no other reason.
            Assert.DoesNotMatch(@"declined round \d+: (?!stopped by the operator)", busy.Output);
            string[] refusals = [.. Directory.EnumerateFiles(Path.Combine(kits, "sites", "site-a", "data", "audit"), "*.jsonl")
                .SelectMany(File.ReadAllLines).Where(l => l.Contains("\"refusal\"", StringComparison.Ordinal))];
            Assert.All(refusals, l => Assert.Contains($"\"reason\":\"{SecureFed.Agent.AgentRunner.StoppedOutcome}\"", l, StringComparison.Ordinal));
        }

        // The aggregator, stopped before its round is done, exits as the agents do.
        int aggregatorCode = await aggregator.InterruptAsync(Hang);
        Assert.True(aggregatorCode == CliApp.ExitCancelled, $"aggregator exit code {aggregatorCode}:\n{aggregator.Output}");
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

    private static CliProcess StartAgent(string kits, string site, string address)
        => CliProcess.Start("agent", "--config", Path.Combine(kits, "sites", site, "agent.json"), $"--SecureFed:Aggregator={address}", "--SecureFed:SyntheticSentences=60");
}
