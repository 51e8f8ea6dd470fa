using System.CommandLine;
using System.Diagnostics;
using System.Globalization;

using SecureFed.Federation;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench provision</c>: wall-clock cost of provisioning a federation (CA + one kit per party, every file
/// fsync'd), of loading and cross-checking a kit, and of one atomic 4 MB file replacement. Warm-up, then N runs, medians.
/// </summary>
internal static class ProvisionBenchCommand
{
    public static Command Create()
    {
        var sites = new Option<int>("--sites") { Description = "Number of sites to provision per run (1 to 100).", DefaultValueFactory = _ => 3 };
        var runs = new Option<int>("--runs") { Description = "Measured runs after the warm-up (the median is reported).", DefaultValueFactory = _ => 7 };
        var command = new Command("provision", "Measure federation provisioning, kit loading and atomic file replacement.")
        {
            sites, runs,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            int n = parse.GetValue(sites);
            int r = parse.GetValue(runs);
            if (n is < 1 or > 100)
            {
                throw new UsageException($"--sites must be between 1 and 100 (got {n}).");
            }

            if (r is < 1 or > 100)
            {
                throw new UsageException($"--runs must be between 1 and 100 (got {r}).");
            }

            string root = Path.Combine(Path.GetTempPath(), "securefed-bench-provision-" + Guid.NewGuid().ToString("N"));
            try
            {
                string[] names = [.. Enumerable.Range(1, n).Select(i => $"site-{i}")];
                var provision = new List<double>();
                var load = new List<double>();
                var atomic = new List<double>();
                int files = 0;
                byte[] payload = new byte[4_000_000];
                Random.Shared.NextBytes(payload);
                for (int run = 0; run <= r; run++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var watch = Stopwatch.StartNew();
                    ProvisionResult result = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(root, $"run{run}"), "bench", names, "127.0.0.1"));
                    double provisionMs = watch.Elapsed.TotalMilliseconds;
                    files = result.Files.Count;

                    watch.Restart();
                    using (PartyKit.Load(result.SiteKitDirectories[names[0]]))
                    {
                        // Loading includes PEM parsing, the PKCS#12 round trip and chain validation.
                    }

                    double loadMs = watch.Elapsed.TotalMilliseconds;
                    watch.Restart();
                    AtomicFile.WriteAllBytes(Path.Combine(root, $"model{run}.bin"), payload);
                    double atomicMs = watch.Elapsed.TotalMilliseconds;
                    if (run > 0)
                    {
                        provision.Add(provisionMs);
                        load.Add(loadMs);
                        atomic.Add(atomicMs);
                    }
                }

                TextWriter stdout = parse.InvocationConfiguration.Output;
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"provision ({n} sites, {files} files): median {BenchStatistics.Median(provision):F1} ms over {r} runs"));
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"PartyKit.Load (site kit): median {BenchStatistics.Median(load):F2} ms"));
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"AtomicFile.WriteAllBytes (4 MB, fsync + rename + dir fsync): median {BenchStatistics.Median(atomic):F2} ms"));
                return Task.FromResult(CliApp.ExitOk);
            }
            finally
            {
                if (Directory.Exists(root))
                {
                    Directory.Delete(root, recursive: true);
                }
            }
        });
        return command;
    }
}
