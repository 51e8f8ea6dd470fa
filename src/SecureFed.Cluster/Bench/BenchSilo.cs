using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

namespace SecureFed.Cluster.Bench;

/// <summary>One silo of the benchmark as a separate <c>securefed aggregator --config</c> process on 127.0.0.1.</summary>
internal sealed class BenchSilo : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(2);
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _tail = new();
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private BenchSilo(Process process, int siloPort, int gatewayPort)
    {
        _process = process;
        SiloPort = siloPort;
        GatewayPort = gatewayPort;
    }

    public int SiloPort { get; }

    public int GatewayPort { get; }

    public int ProcessId => _process.Id;

    /// <summary>The silo's address (<c>SiloAddress.ToParsableString()</c>), once the cluster has reported it.</summary>
    public string Address { get; set; } = "";

    /// <summary>The last lines the process wrote.</summary>
    public string Tail => string.Join("\n  ", _tail);

    public static async Task<BenchSilo> StartAsync(Func<IReadOnlyList<string>, ProcessStartInfo> cli, string directory, string federation, int siloPort, int gatewayPort,
        string connectionString, CancellationToken cancellationToken)
    {
        string config = Path.Combine(directory, $"silo-{siloPort}.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new
        {
            SecureFed = new
            {
                Federation = federation,
                // The grain-level benchmark's silos have no aggregator kit: plain TCP on loopback (the product's default is
                // mutual TLS; `bench cluster --front grpc` runs with it).
                Cluster = new { SiloPort = siloPort, GatewayPort = gatewayPort, AdvertisedAddress = "127.0.0.1", ConnectionString = connectionString, Tls = ClusterTls.Off },
            },
        }), cancellationToken).ConfigureAwait(false);
        ProcessStartInfo info = cli(["aggregator", "--config", config]);
        info.UseShellExecute = false;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        var silo = new BenchSilo(Process.Start(info) ?? throw new InvalidOperationException("could not start a silo process"), siloPort, gatewayPort);
        silo._process.OutputDataReceived += (_, e) => silo.OnLine(e.Data);
        silo._process.ErrorDataReceived += (_, e) => silo.OnLine(e.Data);
        silo._process.BeginOutputReadLine();
        silo._process.BeginErrorReadLine();
        Task first = await Task.WhenAny(silo._listening.Task, silo._process.WaitForExitAsync(cancellationToken), Task.Delay(StartTimeout, cancellationToken)).ConfigureAwait(false);
        if (first != silo._listening.Task)
        {
            silo.Dispose();
            throw new InvalidOperationException($"silo process on port {siloPort} did not start:\n  {silo.Tail}");
        }

        return silo;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(30_000);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }

        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        _tail.Enqueue(line);
        while (_tail.Count > 30 && _tail.TryDequeue(out _))
        {
        }

        if (line.Contains("aggregator cluster silo", StringComparison.Ordinal))
        {
            _listening.TrySetResult();
        }
    }
}
