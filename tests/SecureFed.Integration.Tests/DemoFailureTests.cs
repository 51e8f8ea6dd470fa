using System.Diagnostics;
using System.Runtime.InteropServices;
using SecureFed.Agent;
using SecureFed.Cli;
using SecureFed.Cli.Demo;
using Spectre.Console;

namespace SecureFed.Integration.Tests;

/// <summary>
/// The demo when an agent's local training throws (as TorchSharp did with a freed native Scalar): one readable line
/// per failed host, the trace in its log file, a dropout while t sites are left, otherwise a quick stop with exit 1.
/// </summary>
public sealed class DemoFailureTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-demo-fail-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task Demo_TrainingThrowsAtTwoOfThreeSites_StopsLongBeforeTheTrainingDeadlineWithExitOneAndOneLineReason()
    {
        var failures = new FailurePlan("site-fr", "site-jp");
        using var stdout = new StringWriter();

        int code = await RunAsync(failures, stdout);
        DateTime ended = DateTime.UtcNow;

        string output = stdout.ToString();
        Assert.True(code == CliApp.ExitFailure, $"exit {code}\n{output}");
        Assert.Equal(2, failures.Count);
        TimeSpan afterFailure = ended - failures.Last;
        // The defect this guards against waits out the 900 s training deadline; on a quiet machine the demo stops within
        // a few seconds, and the bound leaves room for a CI machine starved for tens of seconds (shutting down three hosts).
        Assert.True(afterFailure < TimeSpan.FromSeconds(60), $"the demo ran on {afterFailure.TotalSeconds:F1} s after the failure\n{output}");
        string[] lines = output.Split('\n');
        string stopped = Assert.Single(lines, l => l.StartsWith("Demo stopped:", StringComparison.Ordinal));
        Assert.Contains("only 1 of 3 hospitals are left", stopped, StringComparison.Ordinal);
        foreach (string site in new[] { "site-fr", "site-jp" })
        {
            // One line naming the host and the error's message, none of the native frames on the console.
            string line = Assert.Single(lines, l => l.StartsWith($"✗ {site} failed:", StringComparison.Ordinal));
            Assert.Contains("INTERNAL ASSERT FAILED", line, StringComparison.Ordinal);
            Assert.Contains(Path.Combine(_dir, "logs", site + ".log"), line, StringComparison.Ordinal);
            string log = await File.ReadAllTextAsync(Path.Combine(_dir, "logs", site + ".log"));
            Assert.Contains("frame #1: at::native::pow", log, StringComparison.Ordinal);
            Assert.Contains(nameof(FailurePlan), log, StringComparison.Ordinal); // the .NET stack trace too
        }

        Assert.DoesNotContain("frame #", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_TrainingThrowsAtOneOfThreeSites_CompletesAndNamesTheDroppedSite()
    {
        var failures = new FailurePlan("site-jp");
        using var stdout = new StringWriter();

        int code = await RunAsync(failures, stdout);

        string output = stdout.ToString();
        Assert.True(code == CliApp.ExitOk, $"exit {code}\n{output}");
        Assert.Equal(1, failures.Count);
        Assert.Contains("✗ site-jp failed: local training failed in round 1: false INTERNAL ASSERT FAILED", output, StringComparison.Ordinal);
        Assert.Contains("site-jp drops out; 2 of 3 hospitals go on", output, StringComparison.Ordinal);
        Assert.Contains("dropped: site-jp", output, StringComparison.Ordinal);
        Assert.Contains("Dropped out: site-jp (", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Demo stopped", output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(_dir, "fused-model", "model.json")));
    }

    /// <summary>
    /// Two sites, and site-fr drops out before signing in round 2: the attempt aborts after both sites' updates left, so
    /// both charged their patient-level budget for it and the retry would exceed it; both decline. The demo stops within
    /// seconds, exit 1, with one line saying the budgets are spent. Before, the aggregator retried the attempt for ever
    /// (1,495 attempts in 90 s, each with its audit lines) and the demo never ended; and the agents' cancelled calls were
    /// reported as failures while it stopped.
    /// </summary>
    [Fact]
    public async Task Demo_TwoSitesAttemptAbortedAfterTheUpdatesLeft_StopsWhenTheBudgetsAreSpent()
    {
        using var stdout = new StringWriter();
        var settings = new DemoSettings
        {
            OutputDirectory = _dir,
            Rounds = 2,
            Sites = 2,
            SentencesPerSite = 40,
            DropAt = SecureFed.Protocol.ProtocolStage.ConsistencyCheck,
            DropRound = 2,
        };

        int code = await RunAsync(settings, stdout);

        string output = stdout.ToString();
        Assert.True(code == CliApp.ExitFailure, $"exit {code}\n{output}");
        string stopped = Assert.Single(output.Split('\n'), l => l.StartsWith("Demo stopped:", StringComparison.Ordinal));
        Assert.Contains("declined: its privacy budget is spent", stopped, StringComparison.Ordinal);
        Assert.Contains("only 1 of 2 hospitals can still take part; a round needs at least 2 (t)", stopped, StringComparison.Ordinal);
        Assert.DoesNotContain("round 5 ", output, StringComparison.Ordinal); // at most a couple of attempts after the abort
        Assert.DoesNotContain("failed:", output, StringComparison.Ordinal);
        Assert.DoesNotContain("loss NaN", output, StringComparison.Ordinal);
    }

    /// <summary>
    /// A site silent before it advertises its keys: its training progress reports stop, so the round goes on without it
    /// after the aggregator's ProgressSilenceSeconds, not at the training deadline (900 s in the demo before the reports),
    /// and the demo says what it waits for while it waits.
    /// </summary>
    [Fact]
    public async Task Demo_SiteSilentBeforeAdvertising_GoesOnAfterItsReportsStop_PrintingWaitingLines()
    {
        using var stdout = new StringWriter();
        var settings = new DemoSettings
        {
            OutputDirectory = _dir,
            Rounds = 1,
            SentencesPerSite = 40,
            CompareBaselines = false,
            DropAt = SecureFed.Protocol.ProtocolStage.AdvertiseKeys,
            DropRound = 1,
            // Far beyond the 4 minutes RunAsync allows: only the stopped progress reports can let round 1 go on in time.
            TrainingTimeoutSeconds = 600,
            ProgressIntervalSeconds = 1,
            ProgressSilenceSeconds = 6,
            DeadlineWaitLineInterval = TimeSpan.FromSeconds(2),
        };

        int code = await RunAsync(settings, stdout);

        string output = stdout.ToString();
        Assert.True(code == CliApp.ExitOk, $"exit {code}\n{output}");
        Assert.Contains("goes on without the silent site once it has been silent for 6 s (the aggregator's ProgressSilenceSeconds), at the latest at the training deadline, 600 s after", output, StringComparison.Ordinal);
        Assert.Contains("A line every 2 s says how long the round has waited.", output, StringComparison.Ordinal);
        string[] waiting = [.. output.Split('\n').Where(l => l.Contains("round 1: waiting for the sites' keys (", StringComparison.Ordinal))];
        Assert.NotEmpty(waiting);
        Assert.Contains("a site whose progress reports have stopped for 6 s is left out, at the latest at the training deadline, ", waiting[0], StringComparison.Ordinal);
    }

    /// <summary>
    /// While the sites train (from the round's opening until its keys stage closes) the demo says so every
    /// DeadlineWaitLineInterval: the first round of the real corpus was silent for up to 3.5 minutes (demo smoke check,
    /// session 48). Training is slowed to 2 s here so the lines must come; none after the keys stage closed.
    /// </summary>
    [Fact]
    public async Task Demo_SitesTraining_PrintsTrainingLinesUntilTheKeysStageCloses()
    {
        using var stdout = new StringWriter();
        var settings = new DemoSettings
        {
            OutputDirectory = _dir,
            Rounds = 1,
            SentencesPerSite = 40,
            CompareBaselines = false,
            DeadlineWaitLineInterval = TimeSpan.FromMilliseconds(300),
            TrainerHook = (_, inner) => new SecureFed.Testing.SlowTrainer(inner, TimeSpan.FromSeconds(2)),
        };

        int code = await RunAsync(settings, stdout);

        string[] lines = stdout.ToString().Split('\n');
        Assert.True(code == CliApp.ExitOk, $"exit {code}\n{string.Join('\n', lines)}");
        int[] training = [.. lines.Select((l, i) => (l, i)).Where(x => x.l.Contains("round 1: the sites are training locally (", StringComparison.Ordinal)).Select(x => x.i)];
        Assert.NotEmpty(training);
        Assert.Contains("in the first round each site also computes the public encoder's token vectors", lines[training[0]], StringComparison.Ordinal);
        int keysClosed = Array.FindIndex(lines, l => l.Contains("round 1 · advertise_keys ·", StringComparison.Ordinal));
        Assert.True(keysClosed > training[^1], $"a training line after the keys stage closed:\n{string.Join('\n', lines)}");
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private Task<int> RunAsync(FailurePlan failures, StringWriter stdout) => RunAsync(
        new DemoSettings
        {
            OutputDirectory = _dir,
            Rounds = 2,
            SentencesPerSite = 40,
            TrainerHook = failures.Wrap,
        },
        stdout);

    private static async Task<int> RunAsync(DemoSettings settings, StringWriter stdout)
    {
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stdout), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = 400;
        return await new DemoRunner(settings, console).RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(4));
    }

    /// <summary>Makes local training throw in round 1 at the given sites, with a native-looking multi-line message.</summary>
    private sealed class FailurePlan(params string[] sites)
    {
        private readonly Lock _gate = new();
        private readonly List<DateTime> _times = [];

        public int Count
        {
            get
            {
                lock (_gate)
                {
                    return _times.Count;
                }
            }
        }

        public DateTime Last
        {
            get
            {
                lock (_gate)
                {
                    return _times.Max();
                }
            }
        }

        public ILocalTrainer Wrap(string site, ILocalTrainer inner) => sites.Contains(site) ? new Throwing(this, inner) : inner;

        private void Throw()
        {
            lock (_gate)
            {
                _times.Add(DateTime.UtcNow);
            }

            throw new ExternalException(
                "false INTERNAL ASSERT FAILED at \"/pytorch/c10/core/Scalar.h\":279, please report a bug to PyTorch. (simulated)\n" +
                "Exception raised from toDouble at /pytorch/c10/core/Scalar.h:279 (most recent call first):\n" +
                "frame #0: c10::detail::torchCheckFail(char const*, char const*, unsigned int, char const*)\n" +
                "frame #1: at::native::pow(at::Tensor const&, c10::Scalar const&)\n");
        }

        private sealed class Throwing(FailurePlan plan, ILocalTrainer inner) : ILocalTrainer
        {
            public string ModelSpecSha256 => inner.ModelSpecSha256;

            public int ParameterCount => inner.ParameterCount;

            public long ExampleCount => inner.ExampleCount;

            public long ExpectedSteps(LocalTrainingPlan plan) => inner.ExpectedSteps(plan);

            public LocalUpdate Train(float[] globalModel, LocalTrainingPlan trainingPlan, CancellationToken cancellationToken)
            {
                if (trainingPlan.Round == 1)
                {
                    plan.Throw();
                }

                return inner.Train(globalModel, trainingPlan, cancellationToken);
            }
        }
    }
}
