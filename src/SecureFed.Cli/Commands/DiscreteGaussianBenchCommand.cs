using System.CommandLine;
using System.Diagnostics;
using System.Globalization;

using SecureFed.Crypto;
using SecureFed.Privacy;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench dgauss</c>: single-thread throughput of the exact discrete Gaussian sampler fed by the OS CSPRNG
/// (warm-up, then N runs, medians; wall-clock and process-CPU rates).
/// </summary>
internal static class DiscreteGaussianBenchCommand
{
    public static Command Create()
    {
        var sigmas = new Option<double[]>("--sigma")
        {
            Description = "Sigma(s) to measure (repeatable). Default: 3, 463.17578125 (a planned per-site sigma), 7.38905609893065 (full-mantissa double, BigInteger path).",
            DefaultValueFactory = _ => [3.0, 463.17578125, 7.38905609893065],
            AllowMultipleArgumentsPerToken = true,
        };
        var samples = new Option<int>("--samples") { Description = "Samples per run (1000 to 10^8).", DefaultValueFactory = _ => 200_000 };
        var runs = new Option<int>("--runs") { Description = "Measured runs after the warm-up (median reported).", DefaultValueFactory = _ => 5 };
        var command = new Command("dgauss", "Measure the exact discrete Gaussian sampler (samples per second, one thread, OS CSPRNG).")
        {
            sigmas, samples, runs,
        };
        command.SetAction((parse, ct) =>
        {
            int n = parse.GetValue(samples);
            int r = parse.GetValue(runs);
            if (n is < 1000 or > 100_000_000)
            {
                throw new UsageException($"--samples must be between 1000 and 100000000, got {n}.");
            }

            if (r is < 1 or > 101)
            {
                throw new UsageException($"--runs must be between 1 and 101, got {r}.");
            }

            TextWriter output = parse.InvocationConfiguration.Output;
            foreach (double sigma in parse.GetValue(sigmas) ?? [])
            {
                if (!(sigma > 0 && sigma <= DiscreteGaussianSampler.MaxSigma))
                {
                    throw new UsageException($"--sigma must be in (0, {DiscreteGaussianSampler.MaxSigma:G}], got {sigma.ToString(CultureInfo.InvariantCulture)}.");
                }

                var sampler = new DiscreteGaussianSampler(SystemRandomSource.Instance);
                var buffer = new long[n];
                sampler.Sample(sigma, buffer.AsSpan(0, Math.Min(n, 10_000)));
                var wall = new List<double>();
                var cpu = new List<double>();
                for (int run = 0; run < r; run++)
                {
                    ct.ThrowIfCancellationRequested();
                    TimeSpan cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
                    long start = Stopwatch.GetTimestamp();
                    sampler.Sample(sigma, buffer);
                    double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                    double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpuStart).TotalSeconds;
                    wall.Add(n / seconds);
                    cpu.Add(n / Math.Max(cpuSeconds, 1e-6));
                }

                output.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"sigma {sigma:G9}: {BenchStatistics.Median(wall) / 1e3:F0} k samples/s wall, {BenchStatistics.Median(cpu) / 1e3:F0} k samples/s CPU (median of {r} x {n})"));
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }
}
