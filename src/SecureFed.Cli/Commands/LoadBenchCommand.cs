using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Cli.Demo;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench load</c>: one round with many in-process agents over real loopback gRPC (mTLS) and a large model,
/// with synthetic updates instead of training. Reports round time, CPU, process peak memory and the aggregator's
/// peak buffered masked-input bytes. With <c>--aggregator-process</c> the aggregator runs as a separate
/// <c>securefed aggregator --config</c> child process, so its memory and CPU are measured apart from the agents'.
/// </summary>
internal static class LoadBenchCommand
{
    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static Command Create()
    {
        var agents = new Option<int>("--agents") { Description = "Agents (sites) in the round.", DefaultValueFactory = _ => 100 };
        var parameters = new Option<int>("--parameters") { Description = "Model parameters.", DefaultValueFactory = _ => 1_000_000 };
        var uploads = new Option<int>("--max-concurrent-uploads") { Description = "Aggregator's MaxConcurrentUploads.", DefaultValueFactory = _ => 4 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var childAggregator = new Option<bool>("--aggregator-process")
        {
            Description = "Run the aggregator as a child process ('securefed aggregator --config'), the agents in this one, and report each side's peak RSS and CPU separately (Linux /proc).",
        };
        var command = new Command("load", "One round with many in-process agents over loopback gRPC and a large model: round time, CPU, memory.") { agents, parameters, uploads, json, childAggregator };
        command.SetAction(async (parse, ct) =>
        {
            int n = parse.GetValue(agents);
            int d = parse.GetValue(parameters);
            int u = parse.GetValue(uploads);
            if (n is < 3 or > 500)
            {
                throw new UsageException($"--agents must be between 3 and 500, got {n}.");
            }

            if (d is < 1 or > 20_000_000)
            {
                throw new UsageException($"--parameters must be between 1 and 20000000, got {d}.");
            }

            if (u < AggregatorOptions.MinConcurrentUploads || u > 1000)
            {
                // As the aggregator validates SecureFed:MaxConcurrentUploads (one site's stalled upload must not hold the only slot).
                throw new UsageException($"--max-concurrent-uploads must be between {AggregatorOptions.MinConcurrentUploads} and 1000, got {u}.");
            }

            if (parse.GetValue(childAggregator) && !File.Exists("/proc/self/status"))
            {
                throw new UsageException("--aggregator-process measures the child through /proc and needs Linux.");
            }

            string dir = Directory.CreateTempSubdirectory("securefed-load-").FullName;
            try
            {
                TextWriter output = parse.InvocationConfiguration.Output;
                if (parse.GetValue(childAggregator))
                {
                    LoadBenchSplitResult split = await LoadBenchSplitRun.RunAsync(n, d, u, dir, output, ct).ConfigureAwait(false);
                    await output.WriteLineAsync(parse.GetValue(json) ? JsonSerializer.Serialize(split, JsonOptions) : split.Describe()).ConfigureAwait(false);
                    return split.Completed ? CliApp.ExitOk : CliApp.ExitFailure;
                }

                Result r = await RunAsync(n, d, u, dir, ct).ConfigureAwait(false);
                if (parse.GetValue(json))
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(r, JsonOptions)).ConfigureAwait(false);
                }
                else
                {
                    await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                        $"{r.Agents} agents, {r.Parameters:N0} parameters: round {(r.Completed ? "completed" : "FAILED")} in {r.RoundSeconds:F1} s " +
                        $"(whole run {r.WallSeconds:F1} s, CPU {r.CpuSeconds:F1} s); process peak RSS {r.PeakRssBytes / 1048576.0:F0} MiB " +
                        $"(model {r.ModelBytes / 1048576.0:F1} MiB, x{r.PeakRssBytes / (double)r.ModelBytes:F1}); aggregator buffered at most " +
                        $"{r.AggregatorPeakBufferedUploads} uploads = {r.AggregatorPeakBufferedBytes / 1048576.0:F1} MiB")).ConfigureAwait(false);
                }

                return r.Completed ? CliApp.ExitOk : CliApp.ExitFailure;
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        });
        return command;
    }

    internal sealed record Result(int Agents, int Parameters, bool Completed, double RoundSeconds, double WallSeconds, double CpuSeconds,
        long PeakRssBytes, long ModelBytes, int AggregatorPeakBufferedUploads, long AggregatorPeakBufferedBytes);

    private static async Task<Result> RunAsync(int n, int d, int maxUploads, string dir, CancellationToken cancellationToken)
    {
        var wall = Stopwatch.StartNew();
        TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        string[] sites = [.. Enumerable.Range(1, n).Select(i => $"site-{i:D3}")];
        const string spec = "00000000000000000000000000000000000000000000000000000000000000aa";
        var options = new LocalFederationOptions
        {
            OutputDirectory = dir,
            Sites = sites,
            Rounds = 1,
            Aggregator = AggregatorSettings(n, maxUploads),
            Agent = new Dictionary<string, string>(AgentSettings),
        };
        DateTimeOffset? opened = null;
        DateTimeOffset? finished = null;
        await using LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, new float[d], spec, cancellationToken).ConfigureAwait(false);
        federation.Coordinator.Progress += (_, p) =>
        {
            if (p.Stage == "opened")
            {
                opened = DateTimeOffset.UtcNow;
            }
            else if (p.Stage is "completed" or "aborted")
            {
                finished = DateTimeOffset.UtcNow;
            }
        };
        await federation.StartAgentsAsync(new Agent.ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]),
            (site, _) => new SyntheticUpdateTrainer(site, d, spec), null, cancellationToken).ConfigureAwait(false);
        await federation.WaitAsync(TimeSpan.FromHours(1), cancellationToken).ConfigureAwait(false);
        bool completed = federation.State.Store.ListRounds().Any(r => r.Status == Aggregator.Persistence.RoundStatus.Completed);
        var limiter = federation.Aggregator.Services.GetRequiredService<UploadLimiter>();
        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
        return new Result(n, d, completed, ((finished ?? DateTimeOffset.UtcNow) - (opened ?? DateTimeOffset.UtcNow)).TotalSeconds, wall.Elapsed.TotalSeconds,
            cpu.TotalSeconds, PeakRss(), 4L * d, limiter.PeakInUse, limiter.PeakInUse * 4L * (d + 1));
    }

    private static long PeakRss()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return -1;
    }

    /// <summary>A trainer that returns a small random update without touching data (load testing only).</summary>
    /// <summary>Agent settings of the load round: long call deadline, budgets that never bind.</summary>
    internal static IReadOnlyDictionary<string, string> AgentSettings { get; } = new Dictionary<string, string>
    {
        ["CallTimeoutSeconds"] = "300",
        ["SiteEpsilonBudget"] = "1e12",
        ["EpsilonBudget"] = "1e12",
    };

    /// <summary>Aggregator settings of the load round: all n sites required, generous deadlines, a budget that never binds.</summary>
    internal static Dictionary<string, string> AggregatorSettings(int sites, int maxUploads) => new()
    {
        ["MinSites"] = sites.ToString(CultureInfo.InvariantCulture),
        ["TrainingTimeoutSeconds"] = "600",
        ["StageTimeoutSeconds"] = "600",
        ["JoinGraceSeconds"] = "5",
        ["JoinTimeoutSeconds"] = "600",
        ["EpsilonBudget"] = "1e12",
        ["MaxConcurrentUploads"] = maxUploads.ToString(CultureInfo.InvariantCulture),
        ["ModelParameterCount"] = "0", // a synthetic model of --parameters, not the spec's size: unchecked
    };

    internal sealed class SyntheticUpdateTrainer(string site, int parameters, string spec) : ILocalTrainer
    {
        public string ModelSpecSha256 => spec;

        public int ParameterCount => parameters;

        public long ExampleCount => 100;

        public long ExpectedSteps(LocalTrainingPlan plan) => plan.Steps;

        public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
        {
            var rng = new Random(site.GetHashCode(StringComparison.Ordinal));
            float[] delta = new float[parameters];
            for (int i = 0; i < delta.Length; i++)
            {
                delta[i] = (float)((rng.NextDouble() - 0.5) * 1e-3);
            }

            return new LocalUpdate(delta, 100, (int)ExpectedSteps(plan), plan.SampleRate, 0, double.NaN);
        }
    }
}
