using System.CommandLine;
using System.Diagnostics;
using System.Globalization;

using SecureFed.Privacy;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench ledger</c>: the time and managed memory of opening a privacy ledger of N rounds (one site-level zCDP
/// charge a round, written with the ledger's own fsync per append), for its owner (<see cref="PrivacyLedger.Open"/>) and
/// read-only as an auditor opens it; each open verifies every line (JSON, hash chain, replayed epsilons, rounds in order).
/// In a temporary directory on this machine's disk; the ledger is written once, then each open is measured --runs times (medians).
/// </summary>
internal static class PrivacyLedgerBenchCommand
{
    public static Command Create()
    {
        var rounds = new Option<int>("--rounds") { Description = "Rounds (ledger entries) written before the opens are measured (10 to 700000).", DefaultValueFactory = _ => 100_000 };
        var runs = new Option<int>("--runs") { Description = "Measured opens of each kind (the median is reported).", DefaultValueFactory = _ => 3 };
        var command = new Command("ledger", "Measure opening a privacy ledger of many rounds (time, managed bytes allocated, peak heap).") { rounds, runs };
        command.SetAction((parse, ct) =>
        {
            int n = parse.GetValue(rounds) is int r and >= 10 and <= 700_000 ? r : throw new UsageException("--rounds must be between 10 and 700000.");
            int k = parse.GetValue(runs) is int m and >= 1 and <= 50 ? m : throw new UsageException("--runs must be between 1 and 50.");
            TextWriter stdout = parse.InvocationConfiguration.Output;
            string dir = Path.Combine(Path.GetTempPath(), "securefed-bench-ledger-" + Guid.NewGuid().ToString("N"));
            try
            {
                Directory.CreateDirectory(dir);
                string path = Path.Combine(dir, "privacy-ledger.jsonl");
                var clock = Stopwatch.StartNew();
                PrivacyLedger writer = PrivacyLedger.Open(path, "site-bench");
                for (int round = 1; round <= n; round++)
                {
                    ct.ThrowIfCancellationRequested();
                    writer.Append(round, Guarantee.Site, PlannedMechanism.Zcdp(1e-6), 1e-5);
                }

                double writeSeconds = clock.Elapsed.TotalSeconds;
                long bytes = new FileInfo(path).Length;
                var owner = new List<(double Millis, long Allocated, long Peak)>();
                var auditor = new List<(double Millis, long Allocated, long Peak)>();
                for (int i = 0; i < k; i++)
                {
                    owner.Add(AuditBenchCommand.Measure(() => Check(PrivacyLedger.Open(path, "site-bench"), n)));
                    auditor.Add(AuditBenchCommand.Measure(() => Check(PrivacyLedger.OpenReadOnly(path), n)));
                }

                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"ledger: {n:N0} rounds, {bytes / 1e6:F1} MB file (written in {writeSeconds:F1} s, fsync per append); {k} run(s), medians: " +
                    $"open {Describe(owner)}; open read-only {Describe(auditor)}; in {Path.GetTempPath()}"));
                return Task.FromResult(CliApp.ExitOk);
            }
            finally
            {
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
            }
        });
        return command;
    }

    private static void Check(PrivacyLedger ledger, int rounds)
    {
        if (ledger.Entries.Count != rounds)
        {
            throw new InvalidOperationException($"the benchmark ledger holds {ledger.Entries.Count} entries, not {rounds}");
        }
    }

    private static string Describe(List<(double Millis, long Allocated, long Peak)> runs) => string.Create(CultureInfo.InvariantCulture,
        $"{BenchStatistics.Median(runs.Select(r => r.Millis)):F0} ms, allocated {BenchStatistics.Median(runs.Select(r => (double)r.Allocated)) / 1e6:F1} MB, peak heap +{BenchStatistics.Median(runs.Select(r => (double)r.Peak)) / 1e6:F1} MB");
}
