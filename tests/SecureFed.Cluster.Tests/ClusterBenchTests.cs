using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// <c>securefed bench cluster</c> end to end with small sizes, both fronts: <c>grpc</c> (the default: mTLS agents into
/// the single-process aggregator and into three <c>securefed aggregator</c> silo processes uploading by slice) and
/// <c>client</c> (three silo processes, the unsliced reference and sites simulated in the benchmark); PostgreSQL. Checks
/// the JSON fields and the bit-for-bit comparison, never timings.
/// </summary>
public sealed class ClusterBenchTests : IClassFixture<PostgresServer>
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(6);
    private readonly PostgresServer _postgres;
    private readonly ITestOutputHelper _output;

    public ClusterBenchTests(PostgresServer postgres, ITestOutputHelper output)
    {
        _postgres = postgres;
        _output = output;
    }

    [SkippableFact]
    public async Task BenchCluster_GrpcFrontSmallModel_JsonContractModelsEqualAndEachSiloGetsItsSlice()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const int Agents = 4;
        const int Parameters = 6_000;
        (int exit, string output) = await RunCliAsync(
            "bench", "cluster", "--front", "grpc", "--silos", "3", "--agents", $"{Agents}", "--parameters", $"{Parameters}",
            "--connection-string", _postgres.ConnectionString, "--json");
        _output.WriteLine(output);
        Assert.Equal(0, exit);
        Assert.Contains("provisioning federation", output, StringComparison.Ordinal);

        using JsonDocument json = JsonDocument.Parse(output.TrimEnd().Split('\n')[^1]);
        JsonElement r = json.RootElement;
        Assert.Equal("grpc", r.GetProperty("front").GetString());
        Assert.True(r.GetProperty("models_equal").GetBoolean());
        Assert.True(r.GetProperty("inputs_equal").GetBoolean());
        Assert.True(r.GetProperty("model_changed").GetBoolean());
        Assert.Equal(Agents, r.GetProperty("contributors").GetInt32());
        Assert.Equal(["slices", "slices", "coordinator"], r.GetProperty("silo_roles").EnumerateArray().Select(e => e.GetString()));

        long[] siloPeak = [.. r.GetProperty("silo_peak_rss_bytes").EnumerateArray().Select(e => e.GetInt64())];
        long[] siloReceived = [.. r.GetProperty("silo_bytes_received").EnumerateArray().Select(e => e.GetInt64())];
        Assert.Equal(3, siloPeak.Length);
        Assert.Equal(3, siloReceived.Length);
        Assert.Equal(3, r.GetProperty("silo_cpu_seconds").GetArrayLength());
        Assert.All(siloPeak, p => Assert.True(p > 0));
        Assert.True(r.GetProperty("single_peak_rss_bytes").GetInt64() > 0);
        Assert.True(r.GetProperty("cluster_round_seconds").GetDouble() > 0);
        Assert.True(r.GetProperty("single_round_seconds").GetDouble() > 0);

        // On the wire: the single process takes every whole masked input; each silo its own slice of each (the coordinator also
        // the small control messages), so each silo gets more than a third of the inputs and well under half of the single's bytes.
        int sliceWords = r.GetProperty("slice_size").GetInt32();
        long maskedBytes = r.GetProperty("masked_input_bytes").GetInt64();
        Assert.Equal(Agents * 4L * (Parameters + 1), maskedBytes);
        long singleReceived = r.GetProperty("single_bytes_received").GetInt64();
        Assert.True(singleReceived >= maskedBytes, $"single process received {singleReceived} bytes, less than the {maskedBytes} of the masked inputs");
        long lastSliceWords = Parameters + 1 - (2L * sliceWords);
        Assert.All(siloReceived, b => Assert.InRange(b, Agents * 4L * Math.Min(sliceWords, lastSliceWords), singleReceived / 2));

        // Agents given the coordinator's endpoint send it their control calls too: more than slices with framing (the bound
        // the forwarding test below holds the coordinator to).
        Assert.Equal("coordinator", r.GetProperty("agents_via").GetString());
        Assert.True(siloReceived[2] > Agents * ((4L * sliceWords) + 512), $"the coordinator received {siloReceived[2]} bytes, no more than slices with framing");

        // Nothing went through a front: no silo forwarded a byte, and the coordinator counted none from fronts.
        Assert.Equal([0L, 0L, 0L], r.GetProperty("silo_bytes_forwarded").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal([0L, 0L, 0L], r.GetProperty("silo_bytes_returned").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(0, r.GetProperty("coordinator_bytes_from_fronts").GetInt64());
        AssertUnmaskingSeparated(r, "single", 0);
        AssertUnmaskingSeparated(r, "cluster", 0);
    }

    [SkippableFact]
    public async Task BenchCluster_GrpcFrontOneDropped_RoundCompletesWithoutItAndModelsEqual()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const int Agents = 4;
        const int Dropped = 1;
        const int Parameters = 6_000;
        (int exit, string output) = await RunCliAsync(
            "bench", "cluster", "--front", "grpc", "--silos", "3", "--agents", $"{Agents}", "--parameters", $"{Parameters}", "--dropped", $"{Dropped}",
            "--connection-string", _postgres.ConnectionString, "--json");
        _output.WriteLine(output);
        Assert.Equal(0, exit);
        Assert.Contains("dropped: 1 of 4 sites (site-001) share their keys and never upload; the masked-input stage closes at its deadline, StageTimeoutSeconds = 31 on both sides", output, StringComparison.Ordinal);

        using JsonDocument json = JsonDocument.Parse(output.TrimEnd().Split('\n')[^1]);
        JsonElement r = json.RootElement;
        Assert.True(r.GetProperty("models_equal").GetBoolean());
        Assert.True(r.GetProperty("inputs_equal").GetBoolean());
        Assert.True(r.GetProperty("model_changed").GetBoolean());
        Assert.Equal(Dropped, r.GetProperty("dropped").GetInt32());
        // The round completed for every surviving agent on both sides (the benchmark fails otherwise), without the dropped one.
        Assert.Equal(Agents - Dropped, r.GetProperty("contributors").GetInt32());
        Assert.Equal((Agents - Dropped) * 4L * (Parameters + 1), r.GetProperty("masked_input_bytes").GetInt64());
        // 30 s plus a second per 150,000 words of the cohort's inputs; both rounds waited for it at the masked-input stage.
        int deadline = r.GetProperty("stage_timeout_seconds").GetInt32();
        Assert.Equal(31, deadline);
        Assert.True(r.GetProperty("single_round_seconds").GetDouble() >= deadline);
        Assert.True(r.GetProperty("cluster_round_seconds").GetDouble() >= deadline);

        // The time after the deadline, apart: the unmasking work (timed in the aggregator) inside the span from the close of
        // the masked-input stage to the completion (the round store's times), which leaves the deadline out of it.
        Assert.Equal("coordinator", r.GetProperty("agents_via").GetString());
        AssertUnmaskingSeparated(r, "single", deadline);
        AssertUnmaskingSeparated(r, "cluster", deadline);
        Assert.True(r.GetProperty("single_unmask_cpu_seconds").GetDouble() >= 0);
        double[] siloUnmaskCpu = [.. r.GetProperty("silo_unmask_cpu_seconds").EnumerateArray().Select(e => e.GetDouble())];
        Assert.Equal(3, siloUnmaskCpu.Length);
        Assert.All(siloUnmaskCpu, c => Assert.True(c >= 0, $"a silo's unmasking CPU is {c} s"));
    }

    [SkippableFact]
    public async Task BenchCluster_GrpcFrontAgentsViaFront_ControlCallsReachOnlyTheSliceSilosAndModelsEqual()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const int Agents = 4;
        const int Parameters = 6_000;
        (int exit, string output) = await RunCliAsync(
            "bench", "cluster", "--front", "grpc", "--silos", "3", "--agents", $"{Agents}", "--parameters", $"{Parameters}", "--agents-via", "front",
            "--connection-string", _postgres.ConnectionString, "--json");
        _output.WriteLine(output);
        Assert.Equal(0, exit);
        Assert.Contains("each given one slice silo's endpoint only", output, StringComparison.Ordinal);

        using JsonDocument json = JsonDocument.Parse(output.TrimEnd().Split('\n')[^1]);
        JsonElement r = json.RootElement;
        Assert.Equal("front", r.GetProperty("agents_via").GetString());
        Assert.True(r.GetProperty("models_equal").GetBoolean());
        Assert.True(r.GetProperty("inputs_equal").GetBoolean());
        Assert.True(r.GetProperty("model_changed").GetBoolean());
        Assert.Equal(Agents, r.GetProperty("contributors").GetInt32());
        AssertUnmaskingSeparated(r, "single", 0);
        AssertUnmaskingSeparated(r, "cluster", 0);

        // The coordinator silo (last) got from the agents their slices of the index it hosts and nothing else: every control
        // call went to a slice silo, which forwarded it. Each slice silo got its slices and the control calls of the agents
        // given its endpoint (two each), more than slices with framing alone. (A slice upload's framing, one chunk of 2,001
        // words or less, is ~150 bytes; the control calls of one agent of four are over a kilobyte.)
        int sliceWords = r.GetProperty("slice_size").GetInt32();
        long lastSliceWords = Parameters + 1 - (2L * sliceWords);
        long[] received = [.. r.GetProperty("silo_bytes_received").EnumerateArray().Select(e => e.GetInt64())];
        Assert.Equal(3, received.Length);
        Assert.InRange(received[2], Agents * 4L * lastSliceWords, Agents * ((4L * sliceWords) + 512));
        Assert.All(received[..2], b => Assert.True(b > Agents * ((4L * sliceWords) + 512), $"a slice silo received {b} bytes: no more than its slices, so no forwarded control calls"));

        // What the fronts passed on, as each process counted it (gRPC message bytes, protobuf plus the 5-byte prefix): each
        // slice silo forwarded its agents' control calls and passed back the answers, the coordinator forwarded nothing, and
        // the coordinator counted exactly the bytes the fronts sent it (no forwarded call broke off in this run). A front
        // forwards every request it received but the slice uploads it took itself: received less forwarded is its slices
        // with their framing.
        long[] forwarded = [.. r.GetProperty("silo_bytes_forwarded").EnumerateArray().Select(e => e.GetInt64())];
        long[] returned = [.. r.GetProperty("silo_bytes_returned").EnumerateArray().Select(e => e.GetInt64())];
        Assert.Equal(3, forwarded.Length);
        Assert.Equal(3, returned.Length);
        Assert.All(forwarded[..2], b => Assert.True(b > 1024, $"a slice silo forwarded {b} bytes to the coordinator: less than the control calls of its two agents"));
        Assert.All(returned[..2], b => Assert.True(b > 1024, $"a slice silo passed back {b} bytes of the coordinator's answers"));
        Assert.All([0, 1], i => Assert.InRange(received[i] - forwarded[i], Agents * 4L * sliceWords, Agents * ((4L * sliceWords) + 512)));
        Assert.Equal(0, forwarded[2]);
        Assert.Equal(0, returned[2]);
        Assert.Equal(forwarded.Sum(), r.GetProperty("coordinator_bytes_from_fronts").GetInt64());
    }

    [SkippableFact]
    public async Task BenchCluster_ClientFrontThreeSilosSmallModel_JsonHasPerSiloFiguresAndModelsEqual()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const int Agents = 4;
        const int Dropped = 1;
        const int Parameters = 300_000;
        (int exit, string output) = await RunCliAsync(
            "bench", "cluster", "--front", "client", "--silos", "3", "--agents", $"{Agents}", "--parameters", $"{Parameters}", "--dropped", $"{Dropped}",
            "--connection-string", _postgres.ConnectionString, "--json");
        _output.WriteLine(output);
        Assert.Equal(0, exit);

        using JsonDocument json = JsonDocument.Parse(output.TrimEnd().Split('\n')[^1]);
        JsonElement r = json.RootElement;
        Assert.True(r.GetProperty("models_equal").GetBoolean());
        Assert.True(r.GetProperty("sums_exact").GetBoolean());
        Assert.True(r.GetProperty("ledger_recorded").GetBoolean());
        Assert.Equal(Agents - Dropped, r.GetProperty("contributors").GetInt32());
        Assert.Equal(3, r.GetProperty("slices").GetInt32());
        Assert.Equal([0, 1, 2], r.GetProperty("slice_silo").EnumerateArray().Select(e => e.GetInt32()).Order());

        long[] siloPeak = [.. r.GetProperty("silo_peak_rss_bytes").EnumerateArray().Select(e => e.GetInt64())];
        long[] siloReceived = [.. r.GetProperty("silo_bytes_received").EnumerateArray().Select(e => e.GetInt64())];
        double[] siloCpu = [.. r.GetProperty("silo_cpu_seconds").EnumerateArray().Select(e => e.GetDouble())];
        long singlePeak = r.GetProperty("single_peak_rss_bytes").GetInt64();
        long singleReceived = r.GetProperty("single_bytes_received").GetInt64();
        long maskedBytes = r.GetProperty("masked_input_bytes").GetInt64();
        Assert.Equal((Agents - Dropped) * 4L * (Parameters + 1), maskedBytes);
        Assert.Equal(3, siloPeak.Length);
        Assert.Equal(3, siloReceived.Length);
        Assert.Equal(3, siloCpu.Length);
        Assert.Equal(3, r.GetProperty("silo_idle_cpu_seconds_per_second").GetArrayLength());
        Assert.Equal(3, r.GetProperty("silo_idle_rss_bytes").GetArrayLength());
        Assert.True(r.GetProperty("single_cpu_seconds").GetDouble() > 0);
        Assert.True(r.GetProperty("stats_window_seconds").GetDouble() > 0);
        Assert.All(siloPeak, p => Assert.True(p > 0));
        Assert.True(singlePeak > 0);
        Assert.True(r.GetProperty("cluster_round_seconds").GetDouble() > 0);
        Assert.True(r.GetProperty("single_round_seconds").GetDouble() > 0);

        // Every masked input reaches the single process whole; each silo gets its third (each slice enters at its own
        // silo, nothing is forwarded), plus the small messages of the other stages.
        Assert.True(singleReceived >= maskedBytes, $"single process received {singleReceived} bytes, less than the {maskedBytes} of the masked inputs");
        long thirdOfInputs = (Agents - Dropped) * 4L * ((Parameters + 1) / 3);
        Assert.All(siloReceived, b => Assert.InRange(b, thirdOfInputs, singleReceived / 2));
    }

    [Fact]
    public async Task BenchCluster_TooFewSurvivors_UsageErrorNamesTheOption()
    {
        (int exit, string output) = await RunCliAsync("bench", "cluster", "--agents", "4", "--dropped", "2", "--parameters", "0");
        Assert.Equal(2, exit);
        Assert.Contains("--dropped must be between 0 and 1", output, StringComparison.Ordinal);
        Assert.Contains("--parameters must be at least 1", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BenchCluster_ModelTooLargeForTheFront_UsageErrorNamesTheLimitOfThatFront()
    {
        // Grain level: one whole masked input travels in one Orleans message.
        (int exit, string output) = await RunCliAsync("bench", "cluster", "--front", "client", "--parameters", "20000001");
        Assert.Equal(2, exit);
        Assert.Contains("--parameters must be between 1 and 20000000 with --front client", output, StringComparison.Ordinal);

        // gRPC front: only a slice's sum does, so the bound grows with the silos (and stops at one PostgreSQL bytea).
        (exit, output) = await RunCliAsync("bench", "cluster", "--front", "grpc", "--silos", "2", "--parameters", "40000000");
        Assert.Equal(2, exit);
        Assert.Contains("--parameters must be at most 39999999 with --front grpc and --silos 2", output, StringComparison.Ordinal);
        (exit, output) = await RunCliAsync("bench", "cluster", "--front", "grpc", "--silos", "16", "--parameters", "250000001");
        Assert.Equal(2, exit);
        Assert.Contains("--parameters must be at most 250000000 with --front grpc and --silos 16", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BenchCluster_GrpcFrontTinyModelOrTooManyDrops_UsageErrorNamesTheOptionsAndTheThreshold()
    {
        (int exit, string output) = await RunCliAsync("bench", "cluster", "--front", "grpc", "--silos", "3", "--agents", "4", "--dropped", "1", "--parameters", "100");
        Assert.Equal(2, exit);
        Assert.DoesNotContain("--dropped", output, StringComparison.Ordinal);
        Assert.Contains("--parameters must be at least 3071 with --front grpc and --silos 3", output, StringComparison.Ordinal);

        (exit, output) = await RunCliAsync("bench", "cluster", "--front", "grpc", "--agents", "5", "--dropped", "3", "--parameters", "10000");
        Assert.Equal(2, exit);
        Assert.Contains("--dropped must be between 0 and 2 (the survivors must reach the threshold t = ⌊n/2⌋ + 1 = 3 of n = 5 sites), got 3.", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BenchCluster_AgentsViaFrontWithoutASliceSiloOrGrpc_UsageErrorNamesTheOption()
    {
        (int exit, string output) = await RunCliAsync("bench", "cluster", "--front", "grpc", "--silos", "1", "--agents-via", "front", "--parameters", "10000");
        Assert.Equal(2, exit);
        Assert.Contains("--agents-via front needs at least 2 silos", output, StringComparison.Ordinal);

        (exit, output) = await RunCliAsync("bench", "cluster", "--front", "client", "--agents-via", "front", "--parameters", "10000");
        Assert.Equal(2, exit);
        Assert.Contains("--agents-via front needs --front grpc", output, StringComparison.Ordinal);
    }

    /// <summary>
    /// <paramref name="side"/>'s unmasking figures: the work positive and inside the span after the masked-input stage's
    /// close, that span inside the round, and the round at least <paramref name="deadline"/> longer than that span.
    /// </summary>
    private static void AssertUnmaskingSeparated(JsonElement r, string side, int deadline)
    {
        double unmask = r.GetProperty($"{side}_unmask_seconds").GetDouble();
        double afterInput = r.GetProperty($"{side}_after_input_seconds").GetDouble();
        double round = r.GetProperty($"{side}_round_seconds").GetDouble();
        Assert.True(unmask > 0, $"{side}: unmasking {unmask} s");
        Assert.True(unmask < afterInput, $"{side}: unmasking {unmask} s, not inside the {afterInput} s after the masked-input stage closed");
        Assert.True(afterInput < round, $"{side}: {afterInput} s after the masked-input stage closed, not inside the round's {round} s");
        Assert.True(round - afterInput >= deadline - 1, $"{side}: the round's {round} s less the {afterInput} s after the masked input leave less than the {deadline} s deadline");
    }

    private static async Task<(int Exit, string Output)> RunCliAsync(params string[] arguments)
    {
        (int exit, string output, string error) = await SiloProcess.RunCliAsync(RunTimeout, arguments);
        return (exit, output + error);
    }
}
