using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SecureFed.Cluster.Bench;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench coordinator-commit</c>: the coordinator's commit points and a successor's takeover with a large
/// model, on a throw-away PostgreSQL (<see cref="CoordinatorCommitBench"/>); docs/benchmarks.md.
/// </summary>
internal static class CoordinatorCommitBenchCommand
{
    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static Command Create()
    {
        var defaults = new CoordinatorCommitBenchOptions();
        var parameters = new Option<int>("--parameters") { Description = "Model parameters per version (float32; the default is 440 MB a version).", DefaultValueFactory = _ => defaults.Parameters };
        var versions = new Option<int>("--versions") { Description = "Model versions committed (version 0 at start-up, then one per round), all restored by the takeover.", DefaultValueFactory = _ => defaults.Versions };
        var repeats = new Option<int>("--repeats") { Description = "How many times the commit points and the takeover run (each on a federation of its own).", DefaultValueFactory = _ => defaults.Repeats };
        var lease = new Option<double>("--lease-seconds") { Description = "Coordinator lease length (renewed every 3 s, given up 3 s early; default: the product's LeaseSeconds default). A lease lost during a commit point ends the repeat and is reported.", DefaultValueFactory = _ => defaults.LeaseSeconds };
        var connection = new Option<string?>("--connection-string") { Description = "PostgreSQL database to use (default: a throw-away server started with initdb/pg_ctl)." };
        var fsync = new Option<string?>("--fsync")
        {
            Description = "on|off: PostgreSQL's fsync on the throw-away server (default: off, as the earlier figures; on is what a production server runs, every commit waiting for its WAL on disk). Not with --connection-string: an external server keeps its own setting. Either way the server's setting is read back (SHOW fsync) and reported.",
            HelpName = "on|off",
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object as the last line." };
        var command = new Command(
            "coordinator-commit",
            "The coordinator's commit point after each model version (sent once to PostgreSQL, fenced) and a successor's takeover restoring every version, through the product's classes: time, bytes sent, peak working set, managed allocations.")
        {
            parameters, versions, repeats, lease, connection, fsync, json,
        };
        command.SetAction(async (parse, ct) =>
        {
            string? fsyncValue = parse.GetValue(fsync);
            bool? fsyncOn = fsyncValue switch
            {
                null => null,
                "on" => true,
                "off" => false,
                _ => throw new UsageException($"--fsync must be on or off, got '{fsyncValue}'."),
            };
            var options = new CoordinatorCommitBenchOptions
            {
                Parameters = parse.GetValue(parameters),
                Versions = parse.GetValue(versions),
                Repeats = parse.GetValue(repeats),
                LeaseSeconds = parse.GetValue(lease),
                ConnectionString = parse.GetValue(connection),
                Fsync = fsyncOn,
            };
            IReadOnlyList<string> problems = options.Validate();
            if (problems.Count > 0)
            {
                throw new UsageException(string.Join("\n", problems));
            }

            TextWriter output = parse.InvocationConfiguration.Output;
            CoordinatorCommitBenchResult r = await CoordinatorCommitBench.RunAsync(options, output, ct).ConfigureAwait(false);
            await output.WriteLineAsync(parse.GetValue(json) ? JsonSerializer.Serialize(r, JsonOptions) : Describe(r)).ConfigureAwait(false);
            return r.RestoredEqual ? CliApp.ExitOk : CliApp.ExitFailure;
        });
        return command;
    }

    private static string Describe(CoordinatorCommitBenchResult r)
    {
        static string MiB(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);
        static string Server(ServerMemoryPeak? server) => server?.PssBytes is long pss ? MiB(pss) + " MiB" : "not measured";
        var lines = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture, $"{r.Parameters:N0} parameters ({r.ModelBytes:N0} bytes a version), {r.Versions} version(s), {r.Repeats} repeat(s)"),
            string.Create(CultureInfo.InvariantCulture, $"PostgreSQL fsync: {r.Fsync} (read back from the server)"),
            r.ServerPeakRssBytes is long rss
                ? string.Create(CultureInfo.InvariantCulture,
                    $"PostgreSQL server's peak memory: proportional sets summed {(r.ServerPeakPssBytes is long pss ? MiB(pss) + " MiB" : "not readable")}; resident sets summed {MiB(rss)} MiB (counts shared buffers once per process) over up to {r.ServerPeakProcesses} processes, largest process {MiB(r.ServerPeakProcessRssBytes ?? 0)} MiB")
                : "PostgreSQL server's memory: not measured (external server, or /proc not readable)",
        };
        for (int v = 0; v < r.Versions; v++)
        {
            CoordinatorCommitFigures[] c = [.. r.Commits.Where(x => x.Version == v)];
            if (c.Length == 0)
            {
                continue;
            }

            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"commit point of version {v}: median {r.MedianCommitSeconds[v] ?? 0:F2} s; sent {string.Join(" / ", c.Select(x => x.BytesSent.ToString("N0", CultureInfo.InvariantCulture)))} bytes; peak working set {string.Join(" / ", c.Select(x => MiB(x.PeakWorkingSetBytes)))} MiB; PostgreSQL server peak PSS {string.Join(" / ", c.Select(x => Server(x.ServerMemory)))}"));
        }

        if (r.LeaseLostAtVersion is long lost)
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"the lease was lost during the commit point of version {lost}: stopped there, no takeover measured"));
        }

        lines.Add(string.Create(CultureInfo.InvariantCulture,
            $"takeover: median {r.MedianTakeoverSeconds ?? 0:F2} s restoring {string.Join(" / ", r.Takeovers.Select(t => t.VersionsRestored))} version(s); peak working set {string.Join(" / ", r.Takeovers.Select(t => MiB(t.PeakWorkingSetBytes)))} MiB; PostgreSQL server peak PSS {string.Join(" / ", r.Takeovers.Select(t => Server(t.ServerMemory)))}; restored bytes equal: {(r.RestoredEqual ? "yes" : "NO")}"));
        return string.Join(Environment.NewLine, lines);
    }
}
