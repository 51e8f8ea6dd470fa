using System.Diagnostics;
using System.Text.Json;

namespace SecureFed.Cluster.Tests;

/// <summary>One silo as a separate 'securefed aggregator --config' process on 127.0.0.1.</summary>
internal sealed class SiloProcess : IDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _output = new();
    private readonly string _readyLine;

    private SiloProcess(Process process, int siloPort, int gatewayPort, string readyLine)
    {
        _process = process;
        _readyLine = readyLine;
        SiloPort = siloPort;
        GatewayPort = gatewayPort;
    }

    public int SiloPort { get; }

    public int GatewayPort { get; }

    /// <summary>The process id (to look at its open files in /proc).</summary>
    public int ProcessId => _process.Id;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static Task<SiloProcess> StartAsync(string directory, string federation, int siloPort, int gatewayPort, string connectionString)
        => StartAsync(directory, federation, siloPort, gatewayPort, connectionString, aggregator: null);

    /// <summary>
    /// Starts a silo; with <paramref name="aggregator"/> (the single-process aggregator's <c>SecureFed</c> settings) it is the
    /// coordinator silo (<c>SecureFed:Cluster:Coordinator</c>), ready once its gRPC service listens.
    /// </summary>
    public static Task<SiloProcess> StartAsync(string directory, string federation, int siloPort, int gatewayPort, string connectionString, IReadOnlyDictionary<string, object>? aggregator)
        => StartAsync(directory, federation, siloPort, gatewayPort, connectionString, aggregator, agentListen: null, kitDirectory: null);

    /// <summary>
    /// As above; a slice silo with <paramref name="agentListen"/> and the aggregator's <paramref name="kitDirectory"/> also
    /// serves agents the slices it hosts (protocol version 4), ready once that endpoint listens.
    /// </summary>
    public static Task<SiloProcess> StartAsync(string directory, string federation, int siloPort, int gatewayPort, string connectionString, IReadOnlyDictionary<string, object>? aggregator,
        string? agentListen, string? kitDirectory)
        => StartAsync(directory, federation, siloPort, gatewayPort, connectionString, aggregator, agentListen, kitDirectory, cluster: null, readyLine: null);

    /// <summary>
    /// As above, with more <c>SecureFed:Cluster</c> settings (e.g. the lease's) and the output line that says the silo is
    /// ready (e.g. a coordinator-eligible silo waiting for the lease).
    /// </summary>
    public static async Task<SiloProcess> StartAsync(string directory, string federation, int siloPort, int gatewayPort, string connectionString, IReadOnlyDictionary<string, object>? aggregator,
        string? agentListen, string? kitDirectory, IReadOnlyDictionary<string, object>? cluster, string? readyLine)
    {
        string config = Path.Combine(directory, $"silo-{siloPort}.json");
        var clusterSection = new Dictionary<string, object>(cluster ?? new Dictionary<string, object>())
        {
            ["SiloPort"] = siloPort,
            ["GatewayPort"] = gatewayPort,
            ["AdvertisedAddress"] = "127.0.0.1",
            ["ConnectionString"] = connectionString,
            ["SliceSize"] = 1024,
            ["Coordinator"] = aggregator is not null,
            ["AgentListen"] = agentListen ?? "",
        };
        var secureFed = new Dictionary<string, object>(aggregator ?? new Dictionary<string, object>())
        {
            ["Federation"] = federation,
            ["Cluster"] = clusterSection,
        };
        if (kitDirectory is not null)
        {
            secureFed["KitDirectory"] = kitDirectory;
        }

        if (!secureFed.ContainsKey("KitDirectory") && !clusterSection.ContainsKey("Tls"))
        {
            // A silo without the aggregator's kit cannot run the default mutual TLS: membership and grain tests on
            // loopback run plain TCP (every silo of such a test is kit-less); the front, kill and takeover tests give every silo the kit.
            clusterSection["Tls"] = "off";
        }

        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new { SecureFed = secureFed }));
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(CliPath());
        info.ArgumentList.Add("aggregator");
        info.ArgumentList.Add("--config");
        info.ArgumentList.Add(config);
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        string ready = readyLine ?? (aggregator is not null ? "aggregator listening on" : agentListen is not null ? "slice uploads (protocol version 4) served on" : "aggregator cluster silo");
        var silo = new SiloProcess(Process.Start(info)!, siloPort, gatewayPort, ready);
        silo._process.OutputDataReceived += (_, e) => silo.OnLine(e.Data);
        silo._process.ErrorDataReceived += (_, e) => silo.OnLine(e.Data);
        silo._process.BeginOutputReadLine();
        silo._process.BeginErrorReadLine();
        Task exited = silo._process.WaitForExitAsync();
        Task first = await Task.WhenAny(silo._listening.Task, exited, Task.Delay(TimeSpan.FromSeconds(120)));
        if (first != silo._listening.Task)
        {
            silo.Dispose();
            throw new InvalidOperationException($"silo {siloPort} did not start:\n{silo.Output}");
        }

        return silo;
    }

    /// <summary>Waits until the process has written a line containing <paramref name="text"/>.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"silo {SiloPort} exited before writing '{text}':\n{Output}");
            }

            await Task.Delay(100, cts.Token);
        }
    }

    /// <summary>Waits for the process to exit on its own; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        return _process.ExitCode;
    }

    /// <summary>Kills the process (no graceful shutdown).</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(30_000);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Kill();
        }

        _process.Dispose();
    }

    /// <summary>A TCP port on 127.0.0.1 that was free when asked (the caller binds it soon after).</summary>
    internal static int FreePort() => SecureFed.Cluster.Bench.LoopbackPorts.Next();

    /// <summary>Runs <c>securefed</c> with <paramref name="arguments"/> to its end, killed after <paramref name="timeout"/>: its exit code, standard output and standard error.</summary>
    internal static async Task<(int Exit, string Output, string Error)> RunCliAsync(TimeSpan timeout, params string[] arguments)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(CliPath());
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(info)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    internal static string CliPath()
    {
        // tests/SecureFed.Cluster.Tests/bin/<Configuration>/net10.0 -> src/SecureFed.Cli/bin/<Configuration>/net10.0
        var bin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = bin.Name;
        string configuration = bin.Parent!.Name;
        DirectoryInfo root = bin.Parent!.Parent!.Parent!.Parent!.Parent!;
        string path = Path.Combine(root.FullName, "src", "SecureFed.Cli", "bin", configuration, framework, "securefed.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"the CLI was not built: {path}");
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        if (line.Contains(_readyLine, StringComparison.Ordinal))
        {
            _listening.TrySetResult();
        }
    }
}
