using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;

using SecureFed.Crypto;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench pair</c>: the aggregator's cost per (dropped, surviving) pair when unmasking, split into its
/// parts, each measured in process CPU time on one thread in the same run: X25519 the old way (a context and a peer key
/// object per call) against <see cref="X25519Agreement"/> with an <see cref="X25519PeerKey"/>; two HKDF-SHA256 through
/// the platform <see cref="HKDF"/> against <see cref="HkdfSha256"/>; and the m-word PRG expansion added into a sum
/// (<see cref="MaskPrg.AddTo"/>, the same in both). CPU time, medians of interleaved runs, so a shared machine's load
/// shifts both sides alike.
/// </summary>
internal static class PairBenchCommand
{
    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static Command Create()
    {
        var pairs = new Option<int>("--pairs") { Description = "Agreements per measured run (the HKDF part runs 4x as many, the PRG part half).", DefaultValueFactory = _ => 2000 };
        var length = new Option<int>("--length") { Description = "Words per vector m.", DefaultValueFactory = _ => 100_000 };
        var runs = new Option<int>("--runs") { Description = "Measured runs (the median is reported).", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var command = new Command("pair", "Measure the aggregator's unmasking cost per (dropped, surviving) pair, old and new paths, in one run.")
        {
            pairs, length, runs, json,
        };
        command.SetAction((parse, ct) =>
        {
            int p = parse.GetValue(pairs);
            int m = parse.GetValue(length);
            int r = parse.GetValue(runs);
            if (p is < 10 or > 1_000_000 || m is < 1 or > 50_000_000 || r is < 1 or > 101)
            {
                throw new UsageException($"--pairs must be 10..1000000, --length 1..50000000 and --runs 1..101; got {p}, {m} and {r}.");
            }

            Result result = Run(p, m, r, ct);
            TextWriter output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(result, JsonOptions));
            }
            else
            {
                CultureInfo c = CultureInfo.InvariantCulture;
                output.WriteLine(string.Create(c, $"per (dropped, surviving) pair, CPU microseconds on one thread, median of {r} runs (m = {m}):"));
                output.WriteLine(string.Create(c, $"  X25519      old {result.X25519OldMicroseconds,8:F2}   new {result.X25519NewMicroseconds,8:F2}"));
                output.WriteLine(string.Create(c, $"  2 x HKDF    old {result.HkdfOldMicroseconds,8:F2}   new {result.HkdfNewMicroseconds,8:F2}"));
                output.WriteLine(string.Create(c, $"  PRG + add       {result.PrgMicroseconds,8:F2}   (both)"));
                output.WriteLine(string.Create(c, $"  total       old {result.PairOldMicroseconds,8:F2}   new {result.PairNewMicroseconds,8:F2}   new/old {result.Ratio:F3}"));
                output.WriteLine(string.Create(c, $"  X25519 backend {result.X25519Backend}; load average {result.LoadAverage}"));
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    internal sealed record Result(
        int Length,
        int Runs,
        double X25519OldMicroseconds,
        double X25519NewMicroseconds,
        double HkdfOldMicroseconds,
        double HkdfNewMicroseconds,
        double PrgMicroseconds,
        double PairOldMicroseconds,
        double PairNewMicroseconds,
        double Ratio,
        string X25519Backend,
        string LoadAverage);

    internal static Result Run(int pairs, int length, int runs, CancellationToken cancellationToken)
    {
        X25519KeyPair[] dropped = [.. Enumerable.Range(0, 8).Select(_ => X25519KeyPair.Generate())];
        X25519KeyPair[] survivors = [.. Enumerable.Range(0, 64).Select(_ => X25519KeyPair.Generate())];
        X25519PeerKey[] peerKeys = [.. survivors.Select(s => new X25519PeerKey(s.PublicKey))];
        X25519Agreement[] agreements = [.. dropped.Select(d => d.CreateAgreement())];
        try
        {
            byte[] info = DomainLabel.Encode("pair-mask-seed", "bench-context-0123456789abcdef", 1, "site-00001", "site-00002");
            byte[] domain = DomainLabel.Encode("pair-mask", "bench-context-0123456789abcdef", 1);
            byte[] prgInfo = new byte[21 + 4 + domain.Length + 9];
            byte[] shared = new byte[32];
            byte[] seed = new byte[32];
            byte[] key = new byte[32];
            uint[] acc = new uint[length];
            RandomNumberGenerator.Fill(shared);

            var parts = new (Action<int> Work, int Iterations)[]
            {
                (i => dropped[i % 8].DeriveSharedSecret(survivors[i % 64].PublicKey, shared), pairs),
                (i => agreements[i % 8].DeriveSharedSecret(peerKeys[i % 64], shared), pairs),
                (_ =>
                {
                    HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, seed, default, info);
                    HKDF.DeriveKey(HashAlgorithmName.SHA256, seed, key, default, prgInfo);
                }, pairs * 4),
                (_ =>
                {
                    HkdfSha256.DeriveKey(shared, default, info, seed);
                    HkdfSha256.DeriveKey(seed, default, prgInfo, key);
                }, pairs * 4),
                (_ => MaskPrg.AddTo(seed, domain, 32, acc), Math.Max(1, pairs / 2)),
            };
            double[][] micros = [.. parts.Select(_ => new double[runs])];
            for (int run = 0; run < runs; run++)
            {
                for (int part = 0; part < parts.Length; part++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    (Action<int> work, int iterations) = parts[part];
                    for (int i = 0; i < 100; i++)
                    {
                        work(i);
                    }

                    TimeSpan cpu = Environment.CpuUsage.TotalTime;
                    for (int i = 0; i < iterations; i++)
                    {
                        work(i);
                    }

                    micros[part][run] = (Environment.CpuUsage.TotalTime - cpu).TotalMicroseconds / iterations;
                }
            }

            double[] med = [.. micros.Select(BenchStatistics.Median)];
            double old = med[0] + med[2] + med[4];
            double now = med[1] + med[3] + med[4];
            string load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
            return new Result(length, runs, med[0], med[1], med[2], med[3], med[4], old, now, now / old, X25519.Backend, load);
        }
        finally
        {
            foreach (IDisposable d in agreements.Concat<IDisposable>(peerKeys).Concat(dropped).Concat(survivors))
            {
                d.Dispose();
            }
        }
    }
}
