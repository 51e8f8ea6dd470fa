using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SecureFed.Agent;
using SecureFed.Cluster.Bench;
using SecureFed.Federation;
using SecureFed.Protocol;

namespace SecureFed.Cli.Commands;

/// <summary>
/// The split load run: provisions a federation, writes an aggregator configuration (initial model and model spec as
/// files), starts <c>securefed aggregator --config</c> as a child process sampled through procfs, and runs the agents
/// as in-process hosts against it over loopback mTLS gRPC.
/// </summary>
internal static class LoadBenchSplitRun
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(2);

    public static async Task<LoadBenchSplitResult> RunAsync(int n, int d, int maxUploads, string dir, TextWriter progress, CancellationToken cancellationToken)
    {
        var wall = Stopwatch.StartNew();
        string[] sites = [.. Enumerable.Range(1, n).Select(i => $"site-{i:D3}")];
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(dir, "federation"), "load", sites, "127.0.0.1"));
        var spec = new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]);
        string specPath = Path.Combine(dir, "model-spec.json");
        await File.WriteAllTextAsync(specPath, spec.ToJson(), cancellationToken).ConfigureAwait(false);
        string modelPath = Path.Combine(dir, "initial-model.bin");
        await File.WriteAllBytesAsync(modelPath, WireEncoding.ModelBytes(new float[d]), cancellationToken).ConfigureAwait(false);
        int port = FreePort();
        Dictionary<string, string> settings = LoadBenchCommand.AggregatorSettings(n, maxUploads);
        settings["Federation"] = "load";
        settings["Listen"] = $"https://127.0.0.1:{port}";
        settings["KitDirectory"] = provisioned.AggregatorKitDirectory;
        settings["DataDirectory"] = Path.Combine(dir, "aggregator-data");
        settings["InitialModel"] = modelPath;
        settings["ModelSpec"] = specPath;
        settings["Rounds"] = "1";
        string configPath = Path.Combine(dir, "aggregator.json");
        await File.WriteAllTextAsync(configPath, JsonSerializer.Serialize(new Dictionary<string, object> { ["SecureFed"] = settings }), cancellationToken).ConfigureAwait(false);

        using Process child = Process.Start(LoadBenchProcessProbe.SelfCommand("aggregator", "--config", configPath))
            ?? throw new InvalidOperationException("could not start the aggregator child process");
        var tail = new ConcurrentQueue<string>();
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        long openedTicks = 0;
        void OnLine(object sender, DataReceivedEventArgs e)
        {
            if (e.Data is not { } line)
            {
                return;
            }

            tail.Enqueue(line);
            while (tail.Count > 30 && tail.TryDequeue(out _))
            {
            }

            if (line.Contains("aggregator listening on", StringComparison.Ordinal))
            {
                listening.TrySetResult();
            }
            else if (line.Contains("Round 1 opened", StringComparison.Ordinal))
            {
                Interlocked.CompareExchange(ref openedTicks, Stopwatch.GetTimestamp(), 0);
            }
        }

        child.OutputDataReceived += OnLine;
        child.ErrorDataReceived += OnLine;
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        var hosts = new List<IHost>();
        try
        {
            await using var probe = new LoadBenchProcessProbe(child.Id, TimeSpan.FromMilliseconds(200));
            Task started = await Task.WhenAny(listening.Task, child.WaitForExitAsync(cancellationToken), Task.Delay(StartTimeout, cancellationToken)).ConfigureAwait(false);
            if (started != listening.Task)
            {
                throw new InvalidOperationException("the aggregator child process did not start listening:\n  " + string.Join("\n  ", tail));
            }

            probe.Sample();
            long startupRss = probe.RssBytes;
            double startupCpu = probe.CpuSeconds;
            await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"aggregator child process {child.Id} listening on port {port} (RSS {startupRss / 1048576.0:F0} MiB); starting {n} agents")).ConfigureAwait(false);

            TimeSpan cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            long agentsStarted = Stopwatch.GetTimestamp();
            long lastReport = 0;
            int completedAgents = 0;
            foreach (string site in sites)
            {
                var agentSettings = new Dictionary<string, string?>
                {
                    ["SecureFed:Site"] = site,
                    ["SecureFed:Aggregator"] = $"https://127.0.0.1:{port}",
                    ["SecureFed:KitDirectory"] = provisioned.SiteKitDirectories[site],
                    ["SecureFed:DataDirectory"] = Path.Combine(dir, "agents", site),
                };
                foreach ((string key, string value) in LoadBenchCommand.AgentSettings)
                {
                    agentSettings["SecureFed:" + key] = value;
                }

                IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(agentSettings).Build();
                IHost host = AgentHost.Build(configuration, spec, new LoadBenchCommand.SyntheticUpdateTrainer(site, d, spec.Sha256), logging => logging.SetMinimumLevel(LogLevel.Warning));
                host.Services.GetRequiredService<AgentWorker>().RoundFinished += (_, report) =>
                {
                    Interlocked.Exchange(ref lastReport, Stopwatch.GetTimestamp());
                    if (report.Completed)
                    {
                        Interlocked.Increment(ref completedAgents);
                    }
                };
                hosts.Add(host);
            }

            foreach (IHost host in hosts)
            {
                await host.StartAsync(cancellationToken).ConfigureAwait(false);
            }

            using (var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                wait.CancelAfter(TimeSpan.FromHours(1));
                foreach (IHost host in hosts)
                {
                    await host.WaitForShutdownAsync(wait.Token).ConfigureAwait(false);
                }
            }

            probe.Sample();
            TimeSpan agentsCpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
            long agentsPeak = LoadBenchProcessProbe.SelfPeakRssBytes();
            using (var exit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                // The aggregator lingers ~10 s to tell the agents that the federation has finished, then exits.
                exit.CancelAfter(TimeSpan.FromSeconds(60));
                try
                {
                    await child.WaitForExitAsync(exit.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    probe.Sample();
                    child.Kill(entireProcessTree: true);
                }
            }

            long opened = Interlocked.Read(ref openedTicks);
            double roundSeconds = Stopwatch.GetElapsedTime(opened != 0 ? opened : agentsStarted, Interlocked.Read(ref lastReport)).TotalSeconds;
            return new LoadBenchSplitResult(n, d, maxUploads, completedAgents > 0, completedAgents, roundSeconds, wall.Elapsed.TotalSeconds, 4L * d,
                probe.PeakRssBytes, startupRss, probe.CpuSeconds, startupCpu, agentsPeak, agentsCpu.TotalSeconds);
        }
        finally
        {
            foreach (IHost host in hosts)
            {
                try
                {
                    await host.StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                }
                finally
                {
                    host.Dispose();
                }
            }

            if (!child.HasExited)
            {
                child.Kill(entireProcessTree: true);
                await child.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    private static int FreePort() => LoopbackPorts.Next();
}
