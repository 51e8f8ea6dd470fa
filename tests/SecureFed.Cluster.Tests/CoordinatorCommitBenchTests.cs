using System.Text.Json;
using SecureFed.Cluster.Bench;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// <c>securefed bench coordinator-commit</c> end to end with a small model on the throw-away PostgreSQL it starts itself:
/// the JSON contract, each version sent once (at least its bytes, little more), the takeover restoring every committed
/// version byte for byte; and its options refused naming each. Checks figures' sanity, never timings.
/// </summary>
public sealed class CoordinatorCommitBenchTests
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(4);
    private readonly ITestOutputHelper _output;

    public CoordinatorCommitBenchTests(ITestOutputHelper output) => _output = output;

    [SkippableFact]
    public async Task BenchCoordinatorCommit_SmallModelTwoVersions_EachVersionSentOnceAndTakeoverRestoresEveryVersionByteForByte()
    {
        string? unavailable = ThrowawayPostgres.Unavailable();
        Skip.If(unavailable is not null, unavailable);
        const int Parameters = 100_000;
        const int Versions = 2;
        const long ModelBytes = Parameters * 4L;
        (int exit, string output, string error) = await SiloProcess.RunCliAsync(
            RunTimeout, "bench", "coordinator-commit", "--parameters", $"{Parameters}", "--versions", $"{Versions}", "--repeats", "2", "--json");
        _output.WriteLine(output);
        _output.WriteLine(error);
        Assert.Equal(0, exit);
        Assert.Contains("starting a throw-away PostgreSQL server", output, StringComparison.Ordinal);
        Assert.Contains("repeat 1: commit point of model version 1:", output, StringComparison.Ordinal);

        using JsonDocument json = JsonDocument.Parse(output.TrimEnd().Split('\n')[^1]);
        JsonElement r = json.RootElement;
        Assert.Equal(Parameters, r.GetProperty("parameters").GetInt32());
        Assert.Equal(ModelBytes, r.GetProperty("model_bytes").GetInt64());
        Assert.Equal(Versions, r.GetProperty("versions").GetInt32());
        Assert.True(r.GetProperty("restored_equal").GetBoolean());
        Assert.Equal(JsonValueKind.Null, r.GetProperty("lease_lost_at_version").ValueKind);
        Assert.Equal(15, r.GetProperty("lease_seconds").GetDouble());
        Assert.Equal("off", r.GetProperty("fsync").GetString()); // the default, read back from the server
        Assert.Equal(Versions, r.GetProperty("median_commit_seconds").GetArrayLength());
        Assert.True(r.GetProperty("median_takeover_seconds").GetDouble() > 0);

        JsonElement[] commits = [.. r.GetProperty("commits").EnumerateArray()];
        Assert.Equal(2 * Versions, commits.Length);
        Assert.Equal([1, 1, 2, 2], commits.Select(c => c.GetProperty("repeat").GetInt32()));
        Assert.Equal([0L, 1L, 0L, 1L], commits.Select(c => c.GetProperty("version").GetInt64()));
        foreach (JsonElement c in commits)
        {
            // The commit point after a version sends that version once, with the round store (no model bytes) and a small rest.
            long sent = c.GetProperty("bytes_sent").GetInt64();
            Assert.InRange(sent, ModelBytes, ModelBytes + 300_000);
            Assert.True(c.GetProperty("seconds").GetDouble() > 0);
            long before = c.GetProperty("working_set_before_bytes").GetInt64();
            Assert.True(before > 0);
            Assert.True(c.GetProperty("peak_working_set_bytes").GetInt64() >= before);
            Assert.True(c.GetProperty("managed_bytes_allocated").GetInt64() > 0);
            Assert.True(c.GetProperty("lease_held_after").GetBoolean());
        }

        JsonElement[] takeovers = [.. r.GetProperty("takeovers").EnumerateArray()];
        Assert.Equal(2, takeovers.Length);
        foreach (JsonElement t in takeovers)
        {
            Assert.Equal(Versions, t.GetProperty("versions_restored").GetInt32());
            Assert.Equal(Versions - 1, t.GetProperty("latest_version").GetInt64());
            Assert.Equal(Versions * ModelBytes, t.GetProperty("model_bytes_restored").GetInt64());
            Assert.True(t.GetProperty("restored_equal").GetBoolean());
            Assert.True(t.GetProperty("seconds").GetDouble() > 0);
            Assert.True(t.GetProperty("peak_working_set_bytes").GetInt64() >= t.GetProperty("working_set_before_bytes").GetInt64());
        }
    }

    [SkippableFact]
    public async Task BenchCoordinatorCommit_FsyncOn_ServerReportsFsyncOnAndItsPeakMemory()
    {
        string? unavailable = ThrowawayPostgres.Unavailable();
        Skip.If(unavailable is not null, unavailable);
        (int exit, string output, string error) = await SiloProcess.RunCliAsync(
            RunTimeout, "bench", "coordinator-commit", "--parameters", "100000", "--versions", "1", "--fsync", "on", "--json");
        _output.WriteLine(output);
        _output.WriteLine(error);
        Assert.Equal(0, exit);
        Assert.Contains("starting a throw-away PostgreSQL server (fsync on)", output, StringComparison.Ordinal);
        Assert.Contains("PostgreSQL fsync: on (SHOW fsync)", output, StringComparison.Ordinal);

        using JsonDocument json = JsonDocument.Parse(output.TrimEnd().Split('\n')[^1]);
        JsonElement r = json.RootElement;
        Assert.Equal("on", r.GetProperty("fsync").GetString());
        Assert.True(r.GetProperty("restored_equal").GetBoolean());
        if (OperatingSystem.IsLinux())
        {
            // The postmaster and its children: a sum at least the largest process, the proportional sum at most the resident sum.
            long rss = r.GetProperty("server_peak_rss_bytes").GetInt64();
            long largest = r.GetProperty("server_peak_process_rss_bytes").GetInt64();
            long pss = r.GetProperty("server_peak_pss_bytes").GetInt64();
            Assert.True(largest > 0);
            Assert.True(rss >= largest);
            Assert.InRange(pss, 1, rss);
            Assert.True(r.GetProperty("server_peak_processes").GetInt32() >= 2);

            // The same peaks over each step, none above the run's.
            JsonElement[] steps = [.. r.GetProperty("commits").EnumerateArray(), .. r.GetProperty("takeovers").EnumerateArray()];
            Assert.Equal(2, steps.Length);
            foreach (JsonElement step in steps)
            {
                JsonElement server = step.GetProperty("server_memory");
                Assert.InRange(server.GetProperty("process_rss_bytes").GetInt64(), 1, largest);
                Assert.InRange(server.GetProperty("rss_bytes").GetInt64(), server.GetProperty("process_rss_bytes").GetInt64(), rss);
                Assert.InRange(server.GetProperty("pss_bytes").GetInt64(), 1, pss);
                Assert.True(server.GetProperty("samples").GetInt32() >= 2);
            }
        }
    }

    [Fact]
    public async Task BenchCoordinatorCommit_FsyncBadValue_UsageErrorNamesTheOption()
    {
        (int exit, string output, string error) = await SiloProcess.RunCliAsync(RunTimeout, "bench", "coordinator-commit", "--fsync", "maybe");
        Assert.Equal(2, exit);
        Assert.Contains("--fsync must be on or off, got 'maybe'.", output + error, StringComparison.Ordinal);
        Assert.DoesNotContain("starting a throw-away PostgreSQL server", output + error, StringComparison.Ordinal);

        (exit, output, error) = await SiloProcess.RunCliAsync(RunTimeout, "bench", "coordinator-commit", "--fsync", "off", "--connection-string", "Host=127.0.0.1;Database=none");
        Assert.Equal(2, exit);
        Assert.Contains("--fsync cannot be used with --connection-string", output + error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Validate_FsyncWithConnectionString_OneProblemNamingBothOptions(bool fsync)
    {
        var options = new CoordinatorCommitBenchOptions { ConnectionString = "Host=127.0.0.1;Database=none", Fsync = fsync };
        string problem = Assert.Single(options.Validate());
        Assert.StartsWith("--fsync cannot be used with --connection-string", problem, StringComparison.Ordinal);
        Assert.Empty((options with { Fsync = null }).Validate());
        Assert.Empty((options with { ConnectionString = null }).Validate());
    }

    /// <summary>
    /// CLI crash hunt (session 56): a connection string that is not key=value pairs was refused by Npgsql with a message
    /// naming neither the option nor the problem (and the cluster bench ran its single-process round first); a blank one
    /// reached the bench. Both benches refuse them up front, naming the option.
    /// </summary>
    [Theory]
    [InlineData("garbage=;;=", "--connection-string is not a PostgreSQL connection string of key=value pairs separated by ';' (")]
    [InlineData("Host", "--connection-string is not a PostgreSQL connection string of key=value pairs separated by ';' (")]
    [InlineData("", "--connection-string is blank: give a PostgreSQL connection string")]
    [InlineData("   ", "--connection-string is blank: give a PostgreSQL connection string")]
    public void Validate_MalformedConnectionString_OneProblemNamingTheOptionInBothBenches(string connection, string expected)
    {
        Assert.StartsWith(expected, Assert.Single(new CoordinatorCommitBenchOptions { ConnectionString = connection }.Validate()), StringComparison.Ordinal);
        Assert.StartsWith(expected, Assert.Single(new Bench.ClusterBenchOptions { ConnectionString = connection }.Validate()), StringComparison.Ordinal);
        Assert.Empty(new Bench.ClusterBenchOptions { ConnectionString = "Host=127.0.0.1;Database=none" }.Validate());
    }

    [Fact]
    public async Task BenchCoordinatorCommit_BadOptions_UsageErrorNamesEachOption()
    {
        (int exit, string output, string error) = await SiloProcess.RunCliAsync(RunTimeout, "bench", "coordinator-commit", "--parameters", "0", "--versions", "0", "--repeats", "0");
        Assert.Equal(2, exit);
        Assert.Contains("--parameters must be between 1 and 250000000", output + error, StringComparison.Ordinal);
        Assert.Contains("--versions must be between 1 and 50, got 0.", output + error, StringComparison.Ordinal);
        Assert.Contains("--repeats must be between 1 and 20, got 0.", output + error, StringComparison.Ordinal);
        Assert.DoesNotContain("starting a throw-away PostgreSQL server", output + error, StringComparison.Ordinal);

        (exit, output, error) = await SiloProcess.RunCliAsync(RunTimeout, "bench", "coordinator-commit", "--parameters", "250000001");
        Assert.Equal(2, exit);
        Assert.Contains("--parameters must be between 1 and 250000000 (each model version is one PostgreSQL bytea value of at most 1 GB", output + error, StringComparison.Ordinal);
        Assert.Contains("got 250000001.", output + error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1000, 3, 1, "--lease-seconds", 6.5)]
    [InlineData(1000, 3, 1, "--lease-seconds", 601)]
    [InlineData(0, 3, 1, "--parameters")]
    [InlineData(-5, 3, 1, "--parameters")]
    [InlineData(250_000_001, 3, 1, "--parameters")]
    [InlineData(1000, 0, 1, "--versions")]
    [InlineData(1000, 51, 1, "--versions")]
    [InlineData(1000, 3, 0, "--repeats")]
    public async Task Validate_OutOfRange_OneProblemNamingTheOptionAndRunRefuses(int parameters, int versions, int repeats, string option, double leaseSeconds = 15)
    {
        var options = new CoordinatorCommitBenchOptions { Parameters = parameters, Versions = versions, Repeats = repeats, LeaseSeconds = leaseSeconds };
        string problem = Assert.Single(options.Validate());
        Assert.StartsWith(option + " must be between", problem, StringComparison.Ordinal);
        var refused = await Assert.ThrowsAsync<ArgumentException>(() => CoordinatorCommitBench.RunAsync(options, TextWriter.Null, CancellationToken.None));
        Assert.Contains(option, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_Defaults_BertBaseSizedModelThreeVersionsValid()
    {
        var options = new CoordinatorCommitBenchOptions();
        Assert.Equal(110_000_000, options.Parameters);
        Assert.Equal(3, options.Versions);
        Assert.Empty(options.Validate());
        Assert.Empty((options with { Parameters = CoordinatorCommitBenchOptions.MaxParameters, Versions = 1 }).Validate());
    }
}
