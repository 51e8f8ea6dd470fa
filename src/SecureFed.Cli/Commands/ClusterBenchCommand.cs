using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SecureFed.Cluster.Bench;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench cluster</c>: one round on an aggregator cluster of separate silo processes and on the
/// single-process aggregator, side by side: by default through the product's gRPC front with real agents
/// (<see cref="ClusterFrontBench"/>), or at grain level (<c>--front client</c>, <see cref="ClusterBench"/>); docs/benchmarks.md.
/// </summary>
internal static class ClusterBenchCommand
{
    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static Command Create()
    {
        var defaults = new ClusterBenchOptions();
        var silos = new Option<int>("--silos") { Description = "Silo processes of the cluster.", DefaultValueFactory = _ => defaults.Silos };
        var agents = new Option<int>("--agents") { Description = "Sites in the round (agents in this process).", DefaultValueFactory = _ => defaults.Agents };
        var parameters = new Option<int>("--parameters") { Description = "Model parameters (the input vector has one word more).", DefaultValueFactory = _ => defaults.Parameters };
        var dropped = new Option<int>("--dropped") { Description = "Sites that drop after sharing their keys (they never upload their masked input; their pairwise masks are removed; with --front grpc the masked-input stage closes at a deadline computed from the size).", DefaultValueFactory = _ => 0 };
        var connection = new Option<string?>("--connection-string") { Description = "PostgreSQL database of the cluster's grain state (default: a throw-away server started with initdb/pg_ctl)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object as the last line." };
        var front = new Option<string>("--front")
        {
            Description = "grpc: agents over mTLS gRPC into 'securefed aggregator' processes (the coordinator silo and slice silos' AgentListen endpoints, uploads by slice), against the single-process aggregator; client: sites simulated in this process, grain calls routed per slice, against an unsliced ServerRound.",
            DefaultValueFactory = _ => "grpc",
        };
        front.AcceptOnlyFromAmong("grpc", "client");
        var via = new Option<string>("--agents-via")
        {
            Description = "With --front grpc, the endpoint the cluster's agents are given: coordinator (the coordinator silo's), or front (each agent one slice silo's only, in turn; that silo forwards every control call to the coordinator; slices still go to the announced endpoints).",
            DefaultValueFactory = _ => "coordinator",
        };
        via.AcceptOnlyFromAmong("coordinator", "front");
        var command = new Command("cluster", "One round on a cluster of separate silo processes on 127.0.0.1 and on the single-process aggregator (default --front grpc: mTLS agents through the real endpoints, uploads by slice): round time, bytes received, peak RSS and CPU per process; fused models compared bit for bit.")
        {
            silos, agents, parameters, dropped, connection, json, front, via,
        };
        command.SetAction(async (parse, ct) =>
        {
            var options = new ClusterBenchOptions
            {
                Silos = parse.GetValue(silos),
                Agents = parse.GetValue(agents),
                Parameters = parse.GetValue(parameters),
                Dropped = parse.GetValue(dropped),
                ConnectionString = parse.GetValue(connection),
            };
            bool grpc = parse.GetValue(front) == "grpc";
            ClusterBenchAgentsVia agentsVia = parse.GetValue(via) == "front" ? ClusterBenchAgentsVia.Front : ClusterBenchAgentsVia.Coordinator;
            List<string> problems = [.. options.Validate()];
            problems.AddRange(grpc ? ClusterFrontBench.Validate(options, agentsVia) : options.ValidateGrainLevel());
            if (!grpc && agentsVia == ClusterBenchAgentsVia.Front)
            {
                problems.Add("--agents-via front needs --front grpc (with --front client there are no agents' endpoints).");
            }

            if (problems.Count > 0)
            {
                throw new UsageException(string.Join("\n", problems));
            }

            if (!File.Exists("/proc/self/status"))
            {
                throw new UsageException("bench cluster reads each silo's peak memory from /proc and needs Linux.");
            }

            TextWriter output = parse.InvocationConfiguration.Output;
            if (grpc)
            {
                ClusterFrontBenchResult g = await ClusterFrontBench.RunAsync(options, agentsVia, output, ct).ConfigureAwait(false);
                await output.WriteLineAsync(parse.GetValue(json) ? JsonSerializer.Serialize(g, JsonOptions) : Describe(g)).ConfigureAwait(false);
                return g.ModelsEqual && g.InputsEqual ? CliApp.ExitOk : CliApp.ExitFailure;
            }

            ClusterBenchResult r = await ClusterBench.RunAsync(options, arguments => LoadBenchProcessProbe.SelfCommand([.. arguments]), output, ct).ConfigureAwait(false);
            await output.WriteLineAsync(parse.GetValue(json) ? JsonSerializer.Serialize(r, JsonOptions) : Describe(r)).ConfigureAwait(false);
            return r.ModelsEqual && r.SumsExact ? CliApp.ExitOk : CliApp.ExitFailure;
        });
        return command;
    }

    private static string Describe(ClusterFrontBenchResult r)
    {
        static string MiB(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);
        static string KiB(long bytes) => (bytes / 1024.0).ToString("F1", CultureInfo.InvariantCulture);
        var lines = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture,
                $"{r.Agents} agents over mTLS gRPC ({r.Dropped} dropped after sharing keys; stage deadline {r.StageTimeoutSeconds} s), {r.Parameters:N0} parameters, slices of {r.SliceSize:N0} words; masked inputs {MiB(r.MaskedInputBytes)} MiB in total"),
            string.Create(CultureInfo.InvariantCulture,
                $"single process: round {r.SingleRoundSeconds:F2} s, received {MiB(r.SingleBytesReceived)} MiB, peak RSS {MiB(r.SinglePeakRssBytes)} MiB (idle {MiB(r.SingleIdleRssBytes)}), CPU {r.SingleCpuSeconds:F2} s"),
            string.Create(CultureInfo.InvariantCulture,
                $"  after the masked-input stage closed: {r.SingleAfterInputSeconds:F3} s to the round's completion; unmasking work {r.SingleUnmaskSeconds:F3} s (CPU {r.SingleUnmaskCpuSeconds:F2} s)"),
            string.Create(CultureInfo.InvariantCulture,
                $"cluster of {r.Silos} (agents given {(r.AgentsVia == "front" ? "a slice silo's endpoint only: control calls forwarded to the coordinator" : "the coordinator silo's endpoint")}): round {r.ClusterRoundSeconds:F2} s"),
            string.Create(CultureInfo.InvariantCulture,
                $"  after the masked-input stage closed: {r.ClusterAfterInputSeconds:F3} s to the round's completion; unmasking work {r.ClusterUnmaskSeconds:F3} s (CPU per silo {string.Join(" / ", r.SiloUnmaskCpuSeconds.Select(c => c.ToString("F2", CultureInfo.InvariantCulture)))} s)"),
        };
        for (int i = 0; i < r.Silos; i++)
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"  silo {i} ({r.SiloRoles[i]}): received {MiB(r.SiloBytesReceived[i])} MiB ({r.SiloBytesReceived[i] / (double)r.SingleBytesReceived:F3} of single), peak RSS {MiB(r.SiloPeakRssBytes[i])} MiB ({r.SiloPeakRssBytes[i] / (double)r.SinglePeakRssBytes:F2} of single; idle {MiB(r.SiloIdleRssBytes[i])}), CPU {r.SiloCpuSeconds[i]:F2} s{(i == r.Silos - 1 ? "" : $"; forwarded to the coordinator {KiB(r.SiloBytesForwarded[i])} KiB (answers back {KiB(r.SiloBytesReturned[i])} KiB)")}"));
        }

        lines.Add(string.Create(CultureInfo.InvariantCulture,
            $"  coordinator: received {KiB(r.CoordinatorBytesFromFronts)} KiB in calls the fronts forwarded (they report {KiB(r.SiloBytesForwarded.Sum())} KiB); with the agents' own, {MiB(r.SiloBytesReceived[^1] + r.CoordinatorBytesFromFronts)} MiB in all"));

        lines.Add($"agents' process peak RSS {MiB(r.AgentsPeakRssBytes)} MiB; inputs equal: {(r.InputsEqual ? "yes" : "NO")}; fused models equal bit for bit: {(r.ModelsEqual ? "yes" : "NO")}");
        return string.Join(Environment.NewLine, lines);
    }

    private static string Describe(ClusterBenchResult r)
    {
        static string MiB(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);
        var lines = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture,
                $"{r.Agents} sites ({r.Dropped} dropped), {r.Parameters:N0} parameters, {r.Slices} slices; masked inputs {MiB(r.MaskedInputBytes)} MiB in total"),
            string.Create(CultureInfo.InvariantCulture,
                $"single process: round {r.SingleRoundSeconds:F2} s, received {MiB(r.SingleBytesReceived)} MiB, peak RSS {MiB(r.SinglePeakRssBytes)} MiB (idle {MiB(r.SingleIdleRssBytes)}), CPU {r.SingleCpuSeconds:F2} s (idle {r.SingleIdleCpuSecondsPerSecond:F3} s/s over a window of {r.StatsWindowSeconds:F0} s)"),
            string.Create(CultureInfo.InvariantCulture, $"cluster of {r.Silos}: round {r.ClusterRoundSeconds:F2} s"),
        };
        for (int i = 0; i < r.Silos; i++)
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"  silo {i}: received {MiB(r.SiloBytesReceived[i])} MiB ({r.SiloBytesReceived[i] / (double)r.SingleBytesReceived:F2} of single), peak RSS {MiB(r.SiloPeakRssBytes[i])} MiB ({r.SiloPeakRssBytes[i] / (double)r.SinglePeakRssBytes:F2} of single; idle {MiB(r.SiloIdleRssBytes[i])}), CPU {r.SiloCpuSeconds[i]:F2} s (idle {r.SiloIdleCpuSecondsPerSecond[i]:F3} s/s)"));
        }

        lines.Add($"sums exact: {(r.SumsExact ? "yes" : "NO")}; fused models equal bit for bit: {(r.ModelsEqual ? "yes" : "NO")}; ledger recorded: {(r.LedgerRecorded ? "yes" : "no")}");
        return string.Join(Environment.NewLine, lines);
    }
}
