using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;

using SecureFed.Crypto;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench prg</c>: single-thread throughput of the mask PRG (<see cref="MaskPrg.Generate"/> and
/// <see cref="MaskPrg.AddTo"/>) against raw <see cref="SymmetricAlgorithm.EncryptEcb(ReadOnlySpan{byte}, Span{byte}, PaddingMode)"/>
/// over pre-built counter blocks, measured in the same run: warm-up, then N interleaved runs, medians.
/// Rates are per wall-clock second; the <c>cpu_</c> rates divide by the process CPU time instead, which is what
/// <c>openssl speed</c> reports by default (it is insensitive to other load on a shared machine).
/// </summary>
internal static class PrgBenchCommand
{
    private const long DefaultBytes = 64L * 1024 * 1024;
    private const long MaxBytes = 1L << 30;
    private const int EcbChunkBytes = MaskPrg.ChunkBytes;

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static Command Create()
    {
        var bytes = new Option<long>("--bytes") { Description = "Bytes of PRG output per run (a multiple of 16, 4 KiB to 1 GiB).", DefaultValueFactory = _ => DefaultBytes };
        var runs = new Option<int>("--runs") { Description = "Measured runs after the warm-up (the median is reported).", DefaultValueFactory = _ => 7 };
        var bitWidth = new Option<int>("--bit-width") { Description = "Word width b of the PRG output (1 to 32).", DefaultValueFactory = _ => 32 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of text." };
        var command = new Command("prg", "Measure the AES-256-CTR mask PRG's single-thread throughput against raw AES-ECB.")
        {
            bytes, runs, bitWidth, json,
        };
        command.SetAction((parse, ct) =>
        {
            long n = parse.GetValue(bytes);
            int r = parse.GetValue(runs);
            int b = parse.GetValue(bitWidth);
            if (n < 4096 || n > MaxBytes || n % 16 != 0)
            {
                throw new UsageException($"--bytes must be a multiple of 16 between 4096 and {MaxBytes}, got {n}.");
            }

            if (r is < 1 or > 101)
            {
                throw new UsageException($"--runs must be between 1 and 101, got {r}.");
            }

            if (b is < 1 or > 32)
            {
                throw new UsageException($"--bit-width must be between 1 and 32, got {b}.");
            }

            Result result = Run(n, r, b, ct);
            TextWriter output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(result, JsonOptions));
            }
            else
            {
                Print(result, output);
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    internal sealed record Result(
        long Bytes,
        int Runs,
        int BitWidth,
        double BytesPerSecond,
        double AddBytesPerSecond,
        double AesEcbBytesPerSecond,
        double RatioToAesEcb,
        int EcbChunkBytes,
        double CpuBytesPerSecond,
        double AesEcbCpuBytesPerSecond,
        double CpuRatioToAesEcb,
        double[] PrgSeconds,
        double[] AesEcbSeconds,
        string KeystreamPath);

    internal static Result Run(long bytes, int runs, int bitWidth, CancellationToken cancellationToken)
    {
        uint[] words = new uint[bytes / sizeof(uint)];
        byte[] seed = new byte[MaskPrg.SeedSize];
        RandomNumberGenerator.Fill(seed);
        byte[] domain = DomainLabel.Encode("bench-prg", "session", 1, "a", "b");

        using Aes aes = Aes.Create();
        aes.Key = seed;
        byte[] counters = new byte[EcbChunkBytes];
        for (int j = 0; j < counters.Length / 16; j++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt128BigEndian(counters.AsSpan(j * 16, 16), (UInt128)j);
        }

        // Warm-up: small calls until the JIT has tiered up, then one full-size pass of each.
        uint[] small = new uint[64 * 1024];
        for (int i = 0; i < 50; i++)
        {
            MaskPrg.Generate(seed, domain, bitWidth, small);
            MaskPrg.AddTo(seed, domain, bitWidth, small);
            Ecb(aes, counters, MemoryMarshal.AsBytes(small.AsSpan()));
        }

        MaskPrg.Generate(seed, domain, bitWidth, words);
        Ecb(aes, counters, MemoryMarshal.AsBytes(words.AsSpan()));

        double[] prg = new double[runs];
        double[] add = new double[runs];
        double[] ecb = new double[runs];
        double[] prgCpu = new double[runs];
        double[] ecbCpu = new double[runs];
        for (int run = 0; run < runs; run++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            TimeSpan cpu = Environment.CpuUsage.TotalTime;
            long start = Stopwatch.GetTimestamp();
            MaskPrg.Generate(seed, domain, bitWidth, words);
            prg[run] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            prgCpu[run] = (Environment.CpuUsage.TotalTime - cpu).TotalSeconds;

            cpu = Environment.CpuUsage.TotalTime;
            start = Stopwatch.GetTimestamp();
            Ecb(aes, counters, MemoryMarshal.AsBytes(words.AsSpan()));
            ecb[run] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            ecbCpu[run] = (Environment.CpuUsage.TotalTime - cpu).TotalSeconds;

            start = Stopwatch.GetTimestamp();
            MaskPrg.AddTo(seed, domain, bitWidth, words);
            add[run] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        double prgRate = bytes / BenchStatistics.Median(prg);
        double ecbRate = bytes / BenchStatistics.Median(ecb);
        return new Result(
            bytes, runs, bitWidth, prgRate, bytes / BenchStatistics.Median(add), ecbRate, prgRate / ecbRate, EcbChunkBytes,
            bytes / Math.Max(BenchStatistics.Median(prgCpu), 1e-9), bytes / Math.Max(BenchStatistics.Median(ecbCpu), 1e-9),
            BenchStatistics.Median(ecbCpu) / Math.Max(BenchStatistics.Median(prgCpu), 1e-9), prg, ecb,
            System.Runtime.Intrinsics.X86.Aes.IsSupported ? "aes-ni-ctr" : "encrypt-ecb");
    }

    private static void Ecb(Aes aes, byte[] counters, Span<byte> destination)
    {
        for (int offset = 0; offset < destination.Length; offset += counters.Length)
        {
            int length = Math.Min(counters.Length, destination.Length - offset);
            aes.EncryptEcb(counters.AsSpan(0, length), destination.Slice(offset, length), PaddingMode.None);
        }
    }

    private static void Print(Result r, TextWriter output)
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(c, $"mask PRG, single thread: {r.Bytes} bytes of output per run, b = {r.BitWidth}, median of {r.Runs} runs after warm-up"));
        output.WriteLine(string.Create(c, $"  MaskPrg.Generate          {r.BytesPerSecond / 1e9,8:F3} GB/s  (keystream path: {r.KeystreamPath})"));
        output.WriteLine(string.Create(c, $"  MaskPrg.AddTo             {r.AddBytesPerSecond / 1e9,8:F3} GB/s"));
        output.WriteLine(string.Create(c, $"  raw Aes.EncryptEcb        {r.AesEcbBytesPerSecond / 1e9,8:F3} GB/s  (pre-built counter blocks, {r.EcbChunkBytes / 1024} KiB per call)"));
        output.WriteLine(string.Create(c, $"  ratio Generate / ECB      {r.RatioToAesEcb,8:F3}  (wall clock)"));
        output.WriteLine(string.Create(c, $"  per CPU second (like openssl speed without -elapsed): Generate {r.CpuBytesPerSecond / 1e9:F3} GB/s, ECB {r.AesEcbCpuBytesPerSecond / 1e9:F3} GB/s, ratio {r.CpuRatioToAesEcb:F3}"));
    }
}
