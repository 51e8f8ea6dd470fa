using System.CommandLine;
using System.Diagnostics;
using System.Globalization;

using SecureFed.Audit;
using SecureFed.Crypto;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench audit</c>: audit-log append latency (one canonical line, single write and fsync each, a signed
/// checkpoint every 100 lines per writer), full offline verification time, the managed memory a writer that reopens the
/// log keeps while it is open (per line: none grows with the log since the writer keeps only its compact range) and the
/// time of 'audit prove' for the middle line, in a temporary directory on this machine's disk. Warm-up, then N runs, medians.
/// </summary>
internal static class AuditBenchCommand
{
    public static Command Create()
    {
        var lines = new Option<int>("--lines") { Description = "Lines appended per run (10 to 1000000).", DefaultValueFactory = _ => 2000 };
        var threads = new Option<int>("--threads") { Description = "Concurrent writers (1 to 64).", DefaultValueFactory = _ => 1 };
        var runs = new Option<int>("--runs") { Description = "Measured runs after the warm-up (the median is reported).", DefaultValueFactory = _ => 3 };
        var command = new Command("audit", "Measure audit-log append latency (fsync per line) and offline verification time.") { lines, threads, runs };
        command.SetAction((parse, ct) =>
        {
            int n = parse.GetValue(lines) is int l and >= 10 and <= 1_000_000 ? l : throw new UsageException("--lines must be between 10 and 1000000.");
            int t = parse.GetValue(threads) is int w and >= 1 and <= 64 ? w : throw new UsageException("--threads must be between 1 and 64.");
            int r = parse.GetValue(runs) is int k and >= 1 and <= 50 ? k : throw new UsageException("--runs must be between 1 and 50.");
            TextWriter stdout = parse.InvocationConfiguration.Output;
            _ = RunOnce(Math.Min(n, 100), 1, ct);
            var results = new List<(double AppendMicros, double VerifyMillis, double RetainedBytes, double ProveMillis)>();
            for (int i = 0; i < r; i++)
            {
                results.Add(RunOnce(n, t, ct));
            }

            double append = BenchStatistics.Median(results.Select(x => x.AppendMicros));
            double verify = BenchStatistics.Median(results.Select(x => x.VerifyMillis));
            double retained = BenchStatistics.Median(results.Select(x => x.RetainedBytes));
            double prove = BenchStatistics.Median(results.Select(x => x.ProveMillis));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"audit: {n} lines, {t} writer(s), {r} run(s): append median {append:F1} us/line ({1e6 / append:F0} lines/s, fsync per line); " +
                $"verify median {verify:F1} ms ({verify * 1000 / n:F1} us/line); reopened writer keeps {retained / n:F1} B/line of managed memory (median {retained:F0} B); " +
                $"prove median {prove:F1} ms in {Path.GetTempPath()}"));
            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static (double AppendMicros, double VerifyMillis, double RetainedBytes, double ProveMillis) RunOnce(int lines, int threads, CancellationToken ct)
    {
        string dir = Path.Combine(Path.GetTempPath(), "securefed-bench-audit-" + Guid.NewGuid().ToString("N"));
        try
        {
            using Ed25519PrivateKey key = Ed25519PrivateKey.Generate();
            byte[] digest = new byte[32];
            var clock = Stopwatch.StartNew();
            using (AuditLog log = AuditLog.Open(dir, "bench", key, "securefed.bench/audit"))
            {
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads, CancellationToken = ct }, writer =>
                {
                    int mine = (lines / threads) + (writer < lines % threads ? 1 : 0);
                    for (int i = 0; i < mine; i++)
                    {
                        log.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", i / 100).Add("site", "h" + writer).Add("bytes", 40_000).AddDigest("sha256", digest));
                        if (i % 100 == 99)
                        {
                            log.Checkpoint();
                        }
                    }
                });
            }

            double appendMicros = clock.Elapsed.TotalMicroseconds / lines;
            clock.Restart();
            AuditVerification result = AuditVerifier.Verify(dir);
            double verifyMillis = clock.Elapsed.TotalMilliseconds;
            if (!result.Ok)
            {
                throw new InvalidOperationException($"benchmark log failed verification: {result.FirstProblem}");
            }

            // What a writer that reopens the log keeps while it is open (a long-running service's steady state).
            long before = GC.GetTotalMemory(forceFullCollection: true);
            double retained;
            long size;
            using (AuditLog reopened = AuditLog.Open(dir, "bench", key, "securefed.bench/audit"))
            {
                retained = Math.Max(0, GC.GetTotalMemory(forceFullCollection: true) - before); // a collection may free more than it keeps
                size = reopened.Size;
            }

            clock.Restart();
            _ = AuditInclusionProof.Create(dir, (size + 1) / 2);
            double proveMillis = clock.Elapsed.TotalMilliseconds;
            return (appendMicros, verifyMillis, retained, proveMillis);
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
