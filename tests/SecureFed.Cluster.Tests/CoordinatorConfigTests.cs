using System.Diagnostics;
using System.Text.Json;

namespace SecureFed.Cluster.Tests;

/// <summary>'securefed aggregator --config' in cluster mode names every problem of the silo's role before anything starts.</summary>
public sealed class CoordinatorConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-coordinator-config-").FullName;

    [Fact]
    public async Task Aggregator_CoordinatorWithBadClusterAndAggregatorSettings_NamesEveryProblemAtOnce()
    {
        (int code, string error) = await RunAsync(new
        {
            SecureFed = new
            {
                Federation = "config",
                Listen = "http://127.0.0.1:7443",
                Cluster = new { SiloPort = 0, ConnectionString = "Host=127.0.0.1;Database=securefed", Coordinator = true },
            },
        });

        Assert.Equal(2, code); // usage error
        Assert.Contains("SecureFed:Cluster:SiloPort must be between 1 and 65535, got 0.", error, StringComparison.Ordinal);
        Assert.Contains("SecureFed:Listen must be an https:// URL, got 'http://127.0.0.1:7443'.", error, StringComparison.Ordinal);
        Assert.DoesNotContain("ModelSpecSha256", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aggregator_SliceOnlySiloWithListen_RefusedNamingCoordinator()
    {
        (int code, string error) = await RunAsync(new
        {
            SecureFed = new
            {
                Federation = "config",
                Listen = "https://127.0.0.1:7443",
                Cluster = new { ConnectionString = "Host=127.0.0.1;Database=securefed" },
            },
        });

        Assert.Equal(2, code); // usage error
        Assert.Contains("SecureFed:Listen is set ('https://127.0.0.1:7443') but SecureFed:Cluster:Coordinator is false", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aggregator_SliceSiloWithBadAgentListenAndNoKit_NamesBothProblems()
    {
        (int code, string error) = await RunAsync(new
        {
            SecureFed = new
            {
                Federation = "config",
                Cluster = new { ConnectionString = "Host=127.0.0.1;Database=securefed", AgentListen = "http://127.0.0.1:7444" },
            },
        });

        Assert.Equal(2, code); // usage error
        Assert.Contains("SecureFed:Cluster:AgentListen must be an https:// URL with an IP address and a port (e.g. https://127.0.0.1:7444), got 'http://127.0.0.1:7444'.", error, StringComparison.Ordinal);
        Assert.Contains("SecureFed:KitDirectory is required with SecureFed:Cluster:AgentListen", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aggregator_SliceSiloWithOneUploadSlot_RefusedSayingWhy()
    {
        (int code, string error) = await RunAsync(new
        {
            SecureFed = new
            {
                Federation = "config",
                MaxConcurrentUploads = 1,
                Cluster = new { ConnectionString = "Host=127.0.0.1;Database=securefed" },
            },
        });

        Assert.Equal(2, code); // usage error, before the silo starts
        Assert.Contains("SecureFed:MaxConcurrentUploads must be between 2 and 1000, got '1': a site holds at most one upload slot at a time", error, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task<(int Code, string Error)> RunAsync(object configuration)
    {
        string config = Path.Combine(_dir, "aggregator.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(configuration));
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(SiloProcess.CliPath());
        info.ArgumentList.Add("aggregator");
        info.ArgumentList.Add("--config");
        info.ArgumentList.Add(config);
        using Process process = Process.Start(info)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (process.ExitCode, await error + await output);
    }
}
