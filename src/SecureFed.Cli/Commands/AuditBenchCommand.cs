using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;

using SecureFed.Audit;
using SecureFed.Audit.Internal;
using SecureFed.Crypto;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench audit</c>: audit-log append latency (one canonical line, single write and fsync each, a signed
/// checkpoint every 100 lines per writer), full offline verification time, the managed memory a writer that reopens the
/// log keeps while it is open (per line: none grows with the log since the writer keeps only its compact range) and the
/// time of 'audit prove' for the middle line, in a temporary directory on this machine's disk. Warm-up, then N runs, medians.
/// With <c>--memory-lines</c> it also writes a log of that many lines at once (no fsync per line; one signed checkpoint over
/// all) and measures, once each, 'audit verify', 'audit prove' of the middle line and a writer's reopen: wall time, managed
/// bytes allocated, and the peak of the managed heap above what it held before (sampled every millisecond).
/// </summary>
internal static class AuditBenchCommand
{
    public static Command Create()
    {
        var lines = new Option<int>("--lines") { Description = "Lines appended per run (10 to 1000000).", DefaultValueFactory = _ => 2000 };
        var threads = new Option<int>("--threads") { Description = "Concurrent writers (1 to 64).", DefaultValueFactory = _ => 1 };
        var runs = new Option<int>("--runs") { Description = "Measured runs after the warm-up (the median is reported).", DefaultValueFactory = _ => 3 };
        var memoryLines = new Option<int>("--memory-lines")
        {
            Description = "Also write a log of this many lines at once (1000 to 10000000; 0: not) and measure the memory of verify, prove and a writer's reopen.",
            DefaultValueFactory = _ => 0,
        };
        var command = new Command("audit", "Measure audit-log append latency (fsync per line) and offline verification time.") { lines, threads, runs, memoryLines };
        command.SetAction((parse, ct) =>
        {
            int n = parse.GetValue(lines) is int l and >= 10 and <= 1_000_000 ? l : throw new UsageException("--lines must be between 10 and 1000000.");
            int t = parse.GetValue(threads) is int w and >= 1 and <= 64 ? w : throw new UsageException("--threads must be between 1 and 64.");
            int r = parse.GetValue(runs) is int k and >= 1 and <= 50 ? k : throw new UsageException("--runs must be between 1 and 50.");
            int m = parse.GetValue(memoryLines) is int ml and (0 or (>= 1000 and <= 10_000_000)) ? ml : throw new UsageException("--memory-lines must be 0 or between 1000 and 10000000.");
            TextWriter stdout = parse.InvocationConfiguration.Output;
            if (m > 0)
            {
                stdout.WriteLine(MemoryRun(m));
            }

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

    /// <summary>Writes a log of <paramref name="lines"/> lines at once and measures verify, prove (middle line) and a writer's reopen.</summary>
    private static string MemoryRun(int lines)
    {
        string dir = Path.Combine(Path.GetTempPath(), "securefed-bench-audit-memory-" + Guid.NewGuid().ToString("N"));
        try
        {
            const string Origin = "securefed.bench/audit";
            using Ed25519PrivateKey key = Ed25519PrivateKey.Generate();
            long bytes = WriteLog(dir, key, Origin, lines);
            (double Millis, long Allocated, long Peak) verify = Measure(() =>
            {
                AuditVerification result = AuditVerifier.Verify(dir);
                if (!result.Ok)
                {
                    throw new InvalidOperationException($"benchmark log failed verification: {result.FirstProblem}");
                }
            });
            (double Millis, long Allocated, long Peak) prove = Measure(() => _ = AuditInclusionProof.Create(dir, (lines + 1) / 2));
            (double Millis, long Allocated, long Peak) open = Measure(() =>
            {
                using AuditLog log = AuditLog.Open(dir, "bench", key, Origin);
            });
            return string.Create(CultureInfo.InvariantCulture,
                $"audit memory: {lines:N0} lines, {bytes / 1e6:F1} MB file: " +
                $"verify {verify.Millis:F0} ms, allocated {verify.Allocated / 1e6:F1} MB, peak heap +{verify.Peak / 1e6:F1} MB; " +
                $"prove {prove.Millis:F0} ms, allocated {prove.Allocated / 1e6:F1} MB, peak heap +{prove.Peak / 1e6:F1} MB; " +
                $"writer reopen {open.Millis:F0} ms, allocated {open.Allocated / 1e6:F1} MB, peak heap +{open.Peak / 1e6:F1} MB");
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>
    /// A valid log of <paramref name="lines"/> lines written at once: a real writer's log.opened and one masked_input line,
    /// that line repeated with consecutive seq, and one checkpoint over all signed with <paramref name="key"/>. Returns its size.
    /// </summary>
    private static long WriteLog(string dir, Ed25519PrivateKey key, string origin, int lines)
    {
        byte[] digest = new byte[32];
        using (AuditLog log = AuditLog.Open(dir, "bench", key, origin))
        {
            log.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", 1).Add("site", "h0").Add("bytes", 40_000).AddDigest("sha256", digest));
        }

        string logPath = Path.Combine(dir, AuditLog.LogFileName);
        string[] written = File.ReadAllLines(logPath);
        string first = written[0];
        const string Prefix = "{\"seq\":2,";
        string template = written[1].StartsWith(Prefix, StringComparison.Ordinal) ? written[1][Prefix.Length..] : throw new InvalidOperationException("unexpected line 2: " + written[1]);
        // The root is taken in a compact range (one hash per tree level): a list of every leaf hash grew with --memory-lines
        // (10 million lines: 10 million arrays), so the bench that measures the readers' bounded memory did not bound its own.
        var range = new CompactRange();
        using (var stream = new FileStream(logPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            for (int i = 1; i <= lines; i++)
            {
                byte[] line = Encoding.UTF8.GetBytes(i == 1 ? first : string.Create(CultureInfo.InvariantCulture, $"{{\"seq\":{i},{template}"));
                range.Append(MerkleTree.LeafHash(line));
                stream.Write(line);
                stream.WriteByte((byte)'\n');
            }
        }

        foreach (string old in Directory.EnumerateFiles(Path.Combine(dir, AuditLog.CheckpointDirectoryName)))
        {
            File.Delete(old);
        }

        string checkpoint = SignedCheckpoint.Sign(origin, lines, range.RootHash(), key).Text;
        File.WriteAllText(Path.Combine(dir, AuditLog.CheckpointDirectoryName, lines.ToString(CultureInfo.InvariantCulture) + AuditLog.CheckpointExtension), checkpoint);
        File.WriteAllText(Path.Combine(dir, AuditLog.LatestCheckpointFileName), checkpoint);
        return new FileInfo(logPath).Length;
    }

    /// <summary>Wall time, managed bytes allocated (all threads) and the peak of the managed heap above its size before (sampled every millisecond).</summary>
    internal static (double Millis, long Allocated, long Peak) Measure(Action action)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long baseline = GC.GetTotalMemory(forceFullCollection: true);
        long peak = baseline;
        using var done = new ManualResetEventSlim();
        var sampler = new Thread(() =>
        {
            while (!done.Wait(1))
            {
                long now = GC.GetTotalMemory(forceFullCollection: false);
                if (now > Interlocked.Read(ref peak))
                {
                    Interlocked.Exchange(ref peak, now);
                }
            }
        }) { IsBackground = true };
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        sampler.Start();
        var clock = Stopwatch.StartNew();
        try
        {
            action();
        }
        finally
        {
            done.Set();
            sampler.Join();
        }

        double millis = clock.Elapsed.TotalMilliseconds;
        long total = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        long after = GC.GetTotalMemory(forceFullCollection: false);
        return (millis, total, Math.Max(Interlocked.Read(ref peak), after) - baseline);
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
