using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SecureFed.Crypto;
using SecureFed.Protocol;
using Spectre.Console;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench secagg</c>: runs a whole secure-aggregation round in process (no network) and reports client
/// masking time, server unmasking time, bytes per client against a plain upload, and whether the sum is exact; by
/// default once under each masking-graph policy (complete, then sparse), back to back, with the ratios.
/// </summary>
internal static class SecAggBenchCommand
{
    public static Command Create()
    {
        var clients = new Option<int>("--clients") { Description = "Number of simulated clients n.", DefaultValueFactory = _ => 100 };
        var length = new Option<int>("--length") { Description = "Words per input vector m.", DefaultValueFactory = _ => 100_000 };
        var dropout = new Option<double>("--dropout") { Description = "Fraction of clients that drop after ShareKeys (before sending a masked input).", DefaultValueFactory = _ => 0.3 };
        var graph = new Option<string>("--graph") { Description = "Masking-graph policy (the aggregator's Graph setting): complete (complete graph up to 512 clients, SecAgg+ Harary above), sparse (Harary wherever the planner's bounds allow) or both (one round each, back to back).", DefaultValueFactory = _ => "both" };
        var plannedDropout = new Option<double>("--planned-dropout") { Description = "Dropout rate δ the graph planner assumes (0 = the simulated dropout + 0.05; the aggregator plans with 0.3).", DefaultValueFactory = _ => 0 };
        var threads = new Option<int>("--threads") { Description = "Server threads for unmasking (0 = all cores).", DefaultValueFactory = _ => 0 };
        var clientThreads = new Option<int>("--client-threads") { Description = "Threads each client uses for its pairwise masks (0 = all cores).", DefaultValueFactory = _ => 0 };
        var seed = new Option<int>("--seed") { Description = "Seed for the synthetic inputs.", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var command = new Command("secagg", "Run one secure-aggregation round in process and report its costs.")
        {
            clients, length, dropout, graph, plannedDropout, threads, clientThreads, seed, json,
        };
        command.SetAction((parse, ct) =>
        {
            int n = parse.GetValue(clients);
            int m = parse.GetValue(length);
            double d = parse.GetValue(dropout);
            string g = parse.GetValue(graph) ?? "both";
            double pd = parse.GetValue(plannedDropout);
            int th = parse.GetValue(threads);
            if (n < 3 || n > 10_000)
            {
                throw new UsageException($"--clients must be between 3 and 10000, got {n}.");
            }

            if (m < 1 || m > 50_000_000)
            {
                throw new UsageException($"--length must be between 1 and 50000000, got {m}.");
            }

            if (d is < 0 or >= 1 || double.IsNaN(d))
            {
                throw new UsageException($"--dropout must be in [0, 1), got {d.ToString(CultureInfo.InvariantCulture)}.");
            }

            GraphPolicy[] policies;
            if (g.Trim().Equals("both", StringComparison.OrdinalIgnoreCase))
            {
                policies = [GraphPolicy.Complete, GraphPolicy.Sparse];
            }
            else if (GraphPlanner.TryParsePolicy(g, out GraphPolicy single))
            {
                policies = [single];
            }
            else
            {
                throw new UsageException($"--graph must be complete, sparse or both, got '{g}'.");
            }

            if (pd is < 0 or >= 1 || double.IsNaN(pd))
            {
                throw new UsageException($"--planned-dropout must be in [0, 1) (0 = the simulated dropout + 0.05), got {pd.ToString(CultureInfo.InvariantCulture)}.");
            }

            double planned = pd > 0 ? pd : Math.Min(0.9, Math.Max(d, 0.05) + 0.05);
            int cth = parse.GetValue(clientThreads);
            if (th < 0 || cth < 0)
            {
                throw new UsageException($"--threads and --client-threads must be 0 (all cores) or positive, got {th} and {cth}.");
            }

            var results = new List<Result>();
            foreach (GraphPolicy policy in policies)
            {
                if (results.Count > 0)
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                }

                results.Add(Run(n, m, d, policy, planned, th == 0 ? -1 : th, cth == 0 ? -1 : cth, parse.GetValue(seed), ct));
            }

            TextWriter output = parse.InvocationConfiguration.Output;
            bool asJson = parse.GetValue(json);
            if (results.Count == 1)
            {
                if (asJson)
                {
                    output.WriteLine(JsonSerializer.Serialize(results[0], JsonOptions));
                }
                else
                {
                    Print(results[0], output);
                }
            }
            else
            {
                Comparison both = Compare(results[0], results[1]);
                if (asJson)
                {
                    output.WriteLine(JsonSerializer.Serialize(both, JsonOptions));
                }
                else
                {
                    Print(results[0], output);
                    Print(results[1], output);
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"sparse / complete: server unmasking {both.SparseOverComplete.ServerUnmaskSeconds:F3} (CPU {both.SparseOverComplete.ServerUnmaskCpuSeconds:F3}), client masking median {both.SparseOverComplete.ClientMaskSeconds:F3}"));
                }
            }

            return Task.FromResult(results.All(r => r.SumMatches) ? CliApp.ExitOk : CliApp.ExitFailure);
        });
        return command;
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Both policies' results of one run and the ratios sparse / complete.</summary>
    internal sealed record Comparison(Result Complete, Result Sparse, Ratios SparseOverComplete, bool SumMatches);

    /// <summary>Sparse / complete of the headline times.</summary>
    internal sealed record Ratios(double ServerUnmaskSeconds, double ServerUnmaskCpuSeconds, double ClientMaskSeconds, double BytesPerClient);

    internal sealed record Result(
        int Clients,
        int Length,
        double Dropout,
        string GraphPolicy,
        double PlannedDropout,
        string Graph,
        int Degree,
        int Threshold,
        int Survivors,
        double ClientMaskSeconds,
        double ClientMaskSecondsMax,
        double ClientTotalSeconds,
        double ServerUnmaskSeconds,
        double ServerTotalSeconds,
        double BytesPerClient,
        double PlainBytesPerClient,
        double ExpansionRatio,
        bool SumMatches,
        double WallSeconds,
        string X25519Backend,
        double? LoadAverage,
        int ServerThreads,
        int ClientThreads,
        double ServerUnmaskCpuSeconds);

    internal static Comparison Compare(Result complete, Result sparse) => new(complete, sparse,
        new Ratios(sparse.ServerUnmaskSeconds / complete.ServerUnmaskSeconds, sparse.ServerUnmaskCpuSeconds / complete.ServerUnmaskCpuSeconds,
            sparse.ClientMaskSeconds / complete.ClientMaskSeconds, sparse.BytesPerClient / complete.BytesPerClient),
        complete.SumMatches && sparse.SumMatches);

    internal static Result Run(int n, int m, double dropout, GraphPolicy policy, double plannedDropout, int threads, int clientThreads, int seed, CancellationToken cancellationToken)
    {
        var wall = Stopwatch.StartNew();
        GraphPlan plan = GraphPlanner.Plan(n, policy, dropoutFraction: plannedDropout);
        var identities = new Ed25519PrivateKey[n];
        for (int i = 0; i < n; i++)
        {
            identities[i] = Ed25519PrivateKey.Generate();
        }

        var participants = Enumerable.Range(1, n)
            .Select(i => new Participant(i, "site-" + i.ToString("D5", CultureInfo.InvariantCulture), identities[i - 1].PublicKey)).ToArray();
        byte[] session = new byte[16];
        SystemRandomSource.Instance.Fill(session);
        var parameters = new RoundParameters("bench", 1, Convert.ToHexStringLower(session), participants, plan.Threshold, plan.Degree, m, 32);
        var rng = new Random(seed);
        var inputs = new uint[n][];
        for (int i = 0; i < n; i++)
        {
            inputs[i] = new uint[m];
            for (int j = 0; j < m; j++)
            {
                inputs[i][j] = (uint)rng.NextInt64(0, 1L << 32);
            }
        }

        int drops = (int)Math.Round(n * dropout);
        if (n - drops < plan.Threshold)
        {
            throw new UsageException($"dropping {drops} of {n} clients leaves fewer than the threshold t = {plan.Threshold}.");
        }

        var dropped = Enumerable.Range(1, n).OrderBy(_ => rng.Next()).Take(drops)
            .Select(i => new SimulatedDropout(i, ProtocolStage.MaskedInputCollection)).ToArray();
        cancellationToken.ThrowIfCancellationRequested();
        SimulationResult sim = SecAggSimulation.Run(parameters, identities, inputs, dropped, serverParallelism: threads, clientParallelism: clientThreads);
        var expected = new uint[m];
        foreach (int u in sim.Aggregation.Contributors)
        {
            ModularVector.Add(expected, inputs[u - 1], 32);
        }

        bool matches = expected.AsSpan().SequenceEqual(sim.Aggregation.Sum);
        var survivors = sim.Aggregation.Contributors;
        double[] maskSeconds = [.. survivors.Select(u => sim.MaskTimePerClient[u - 1].TotalSeconds).Order()];
        double[] totalSeconds = [.. survivors.Select(u => sim.ClientTimePerClient[u - 1].TotalSeconds).Order()];
        double bytes = survivors.Average(u => (double)sim.BytesSentPerClient[u - 1]);
        foreach (Ed25519PrivateKey id in identities)
        {
            id.Dispose();
        }

        // A plain (unprotected) upload of the same vector: m 32-bit words.
        double plain = 4.0 * m;
        return new Result(n, m, dropout, GraphPlanner.PolicyName(policy), plannedDropout, plan.IsComplete ? "complete" : "harary", plan.Degree, plan.Threshold, survivors.Count,
            BenchStatistics.Median(maskSeconds), maskSeconds[^1], BenchStatistics.Median(totalSeconds), sim.ServerUnmaskTime.TotalSeconds, sim.ServerTime.TotalSeconds,
            bytes, plain, bytes / plain, matches, wall.Elapsed.TotalSeconds, X25519.Backend, LoadAverage(),
            threads > 0 ? threads : Environment.ProcessorCount, clientThreads > 0 ? clientThreads : Environment.ProcessorCount,
            sim.ServerUnmaskCpuTime.TotalSeconds);
    }

    /// <summary>The 1-minute load average (Linux), so a reader can tell whether the machine was shared.</summary>
    private static double? LoadAverage()
    {
        try
        {
            string text = File.ReadAllText("/proc/loadavg");
            return double.Parse(text.AsSpan(0, text.IndexOf(' ', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    private static void Print(Result r, TextWriter output)
    {
        var table = new Table().AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
        void Row(string name, string value) => table.AddRow(Markup.Escape(name), Markup.Escape(value));
        Row("clients n / vector length m", $"{r.Clients} / {r.Length:N0}");
        Row("graph policy (planned dropout δ)", $"{r.GraphPolicy} ({r.PlannedDropout:F2})");
        Row("graph (degree k, threshold t)", $"{r.Graph} (k={r.Degree}, t={r.Threshold})");
        Row("dropped after ShareKeys", $"{r.Clients - r.Survivors} ({r.Dropout:P0})");
        Row("client masking time (median / max)", $"{r.ClientMaskSeconds * 1000:F1} ms / {r.ClientMaskSecondsMax * 1000:F1} ms");
        Row("client protocol time (median)", $"{r.ClientTotalSeconds * 1000:F1} ms");
        Row("server unmasking time (threads)", $"{r.ServerUnmaskSeconds:F3} s ({r.ServerThreads})");
        Row("server unmasking CPU time", $"{r.ServerUnmaskCpuSeconds:F3} s");
        Row("client masking threads", r.ClientThreads.ToString(CultureInfo.InvariantCulture));
        Row("server total time", $"{r.ServerTotalSeconds:F3} s");
        Row("bytes per client vs plain upload", $"{r.BytesPerClient:N0} vs {r.PlainBytesPerClient:N0} ({r.ExpansionRatio:F4}x)");
        Row("sum matches plain sum", r.SumMatches ? "yes" : "NO");
        Row("wall time of the benchmark", $"{r.WallSeconds:F1} s");
        Row("X25519 backend", r.X25519Backend);
        Row("load average (1 min) at the end", r.LoadAverage is double load ? load.ToString("F2", CultureInfo.InvariantCulture) : "n/a");
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) });
        console.Write(table);
    }
}
