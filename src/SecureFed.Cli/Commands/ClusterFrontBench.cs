using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Cluster.Bench;
using SecureFed.Federation;
using SecureFed.Protocol;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench cluster --front grpc</c>: one round of the real product path on both sides, one after the other.
/// The benchmark provisions a federation (CA, aggregator and site kits) in a temporary folder; the single-process side
/// is a <c>securefed aggregator --config</c> child process (Kestrel, mTLS, SQLite); the cluster side is
/// <see cref="ClusterBenchOptions.Silos"/> <c>securefed aggregator</c> silo processes on PostgreSQL, the last the
/// coordinator (Kestrel mTLS service, round coordinator), the others slice silos serving agents on their
/// <c>AgentListen</c> endpoints. The same <see cref="ClusterBenchOptions.Agents"/> agents (<see cref="AgentRunner"/>s in
/// this process, synthetic updates, protocol version 4, mTLS) take part in both rounds with the same privatized inputs
/// (<see cref="BenchReplayRandomSource"/>), so the two fused models, read from both round stores, must be equal bit for bit.
/// With <see cref="ClusterBenchOptions.Dropped"/> = N the first N sites share their keys and then go silent on both sides
/// (<see cref="DropoutHook"/> before the masked input), so both aggregators close that stage at its deadline and remove
/// the dropped sites' pairwise masks (the cluster in its slice grains). Both sides' unmasking is reported apart from that
/// deadline, from the aggregator's own log line and round store (<see cref="BenchUnmaskWatch"/>, <see cref="LoadRound"/>).
/// With <see cref="ClusterBenchAgentsVia.Front"/> the cluster's agents are given one slice silo's endpoint each, which
/// forwards their control calls to the coordinator silo.
/// </summary>
internal static class ClusterFrontBench
{
    private const string Coordinator = "coordinator";
    private const int MinSliceSize = 1024; // AggregatorClusterOptions.SliceSize's least value
    private static readonly TimeSpan RoundTimeout = TimeSpan.FromHours(1);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The problems of <paramref name="options"/> for this mode beyond <see cref="ClusterBenchOptions.Validate"/>.</summary>
    public static IEnumerable<string> Validate(ClusterBenchOptions options, ClusterBenchAgentsVia via)
    {
        if (via == ClusterBenchAgentsVia.Front && options.Silos < 2)
        {
            yield return $"--agents-via front needs at least 2 silos (a slice silo to forward to the coordinator silo), got --silos {options.Silos}.";
        }

        if ((long)options.Parameters + 1 < (long)MinSliceSize * options.Silos)
        {
            yield return $"--parameters must be at least {(MinSliceSize * options.Silos) - 1} with --front grpc and --silos {options.Silos} (every silo hosts a slice of at least {MinSliceSize} words), got {options.Parameters}.";
        }

        long maxBySlice = ((long)ClusterBenchOptions.MaxSliceWords * Math.Max(1, options.Silos)) - 1;
        long max = Math.Min(ClusterBenchOptions.MaxFrontParameters, maxBySlice);
        if (options.Parameters > max)
        {
            yield return $"--parameters must be at most {max} with --front grpc and --silos {options.Silos} (each slice's sum must fit in one 100 MiB Orleans message, {ClusterBenchOptions.MaxSliceWords} words, and a model in one PostgreSQL bytea, {ClusterBenchOptions.MaxFrontParameters} parameters), got {options.Parameters}.";
        }
    }

    /// <summary>
    /// The aggregators' <c>StageTimeoutSeconds</c> (both sides): 600 s when every site uploads (no stage waits for its
    /// deadline); with dropped sites the masked-input stage closes only at its deadline, so it is short but generous: 30 s
    /// plus one second per 150,000 words of the cohort's masked inputs (n·(d + 1); about a third of the rate the
    /// loaded 2-core machine sustained in docs/benchmarks.md), at most 3,600 s (the setting's bound).
    /// </summary>
    internal static int StageTimeoutSeconds(ClusterBenchOptions options) => options.Dropped == 0
        ? 600
        : (int)Math.Min(3_600, 30 + (((long)options.Agents * (options.Parameters + 1L)) + 149_999) / 150_000);

    public static async Task<ClusterFrontBenchResult> RunAsync(ClusterBenchOptions options, ClusterBenchAgentsVia via, TextWriter progress, CancellationToken cancellationToken)
    {
        var wall = Stopwatch.StartNew();
        int n = options.Agents;
        int d = options.Parameters;
        int vectorWords = d + 1; // no federated-evaluation words: the benchmark's aggregators turn it off
        int sliceSize = (vectorWords + options.Silos - 1) / options.Silos;
        string dir = Directory.CreateTempSubdirectory("securefed-bench-front-").FullName;
        string federation = "bench-front-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        string[] sites = [.. Enumerable.Range(1, n).Select(i => string.Create(CultureInfo.InvariantCulture, $"site-{i:D3}"))];
        var keys = sites.ToDictionary(s => s, _ => RandomNumberGenerator.GetBytes(32), StringComparer.Ordinal);
        ThrowawayPostgres? postgres = null;
        try
        {
            await progress.WriteLineAsync($"provisioning federation '{federation}' ({n} sites, CA, aggregator and site kits) in {dir}").ConfigureAwait(false);
            ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(dir, "federation"), federation, sites, "127.0.0.1"));
            var spec = new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]);
            string specPath = Path.Combine(dir, "model-spec.json");
            await File.WriteAllTextAsync(specPath, spec.ToJson(), cancellationToken).ConfigureAwait(false);
            string modelPath = Path.Combine(dir, "initial-model.bin");
            await File.WriteAllBytesAsync(modelPath, WireEncoding.ModelBytes(new float[d]), cancellationToken).ConfigureAwait(false);
            // Sites 1..dropped share their keys and then go silent (as --front client drops them), on both sides.
            var dropped = sites.Take(options.Dropped).ToHashSet(StringComparer.Ordinal);
            int stageTimeout = StageTimeoutSeconds(options);
            var setup = new Setup(dir, federation, provisioned, spec, specPath, modelPath, n, d, keys, dropped, stageTimeout);
            if (dropped.Count > 0)
            {
                await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"dropped: {dropped.Count} of {n} sites ({string.Join(", ", dropped.Order(StringComparer.Ordinal))}) share their keys and never upload; the masked-input stage closes at its deadline, StageTimeoutSeconds = {stageTimeout} on both sides")).ConfigureAwait(false);
            }

            // Side 1: the single-process aggregator.
            await progress.WriteLineAsync("single process: starting 'securefed aggregator' (Kestrel, mTLS, SQLite)").ConfigureAwait(false);
            int singlePort = FreePort();
            string singleData = Path.Combine(dir, "single-aggregator");
            string singleConfig = await WriteConfigAsync(dir, "single.json", AggregatorSettings(setup, singlePort, singleData), null, cancellationToken).ConfigureAwait(false);
            SideOutcome single;
            long singlePeak, singleIdle;
            double singleCpu, singleUnmask, singleUnmaskCpu;
            await using (BenchChildProcess process = await BenchChildProcess.StartAsync("single-process aggregator", singleConfig, "aggregator listening on", cancellationToken).ConfigureAwait(false))
            {
                singleIdle = process.Probe.RssBytes;
                double cpu0 = process.Probe.CpuSeconds;
                await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"single process {process.ProcessId} listening on 127.0.0.1:{singlePort} (RSS {MiB(singleIdle)} MiB); {n} agents start")).ConfigureAwait(false);
                var unmasking = new BenchUnmaskWatch(process, [process]);
                single = await RunAgentsAsync(setup, [new Uri($"https://127.0.0.1:{singlePort}")], "single-agents", process, [process], progress, cancellationToken).ConfigureAwait(false);
                singleUnmask = unmasking.Seconds;
                singleUnmaskCpu = unmasking.CpuSeconds[0];
                await process.WaitForExitAsync(ExitTimeout, cancellationToken).ConfigureAwait(false);
                singlePeak = process.Probe.PeakRssBytes;
                singleCpu = process.Probe.CpuSeconds - cpu0;
            }

            (byte[] singleModel, double singleAfterInput) = LoadRound(setup, singleData);
            await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"single process: round {single.RoundSeconds:F1} s (unmasking {singleUnmask:F3} s), peak RSS {MiB(singlePeak)} MiB, CPU {singleCpu:F1} s")).ConfigureAwait(false);

            // Side 2: the cluster.
            string connectionString;
            if (options.ConnectionString is not null)
            {
                connectionString = options.ConnectionString;
            }
            else
            {
                await progress.WriteLineAsync("cluster: starting a throw-away PostgreSQL (initdb, pg_ctl)").ConfigureAwait(false);
                postgres = await ThrowawayPostgres.StartAsync("securefed_bench", cancellationToken).ConfigureAwait(false);
                connectionString = postgres.ConnectionString;
            }

            var silos = new List<BenchChildProcess>();
            var forwarded = new List<BenchForwardedBytes>();
            var endpoints = new List<string>();
            var fronts = new List<Uri>();
            SideOutcome cluster;
            long[] siloPeak, siloIdle, siloForwarded, siloReturned;
            long fromFronts;
            double[] siloCpu, siloUnmaskCpu;
            double clusterUnmask;
            string clusterData = Path.Combine(dir, "cluster-aggregator");
            try
            {
                for (int i = 0; i < options.Silos - 1; i++)
                {
                    var cluster0 = ClusterSection(FreePort(), FreePort(), connectionString, sliceSize, coordinator: false);
                    cluster0["AgentListen"] = "https://127.0.0.1:0";
                    var settings = new Dictionary<string, object> { ["Federation"] = federation, ["KitDirectory"] = provisioned.AggregatorKitDirectory };
                    string config = await WriteConfigAsync(dir, $"silo-{i}.json", settings, cluster0, cancellationToken).ConfigureAwait(false);
                    BenchChildProcess silo = await BenchChildProcess.StartAsync($"slice silo {i}", config, "slice uploads (protocol version 4) served on", cancellationToken).ConfigureAwait(false);
                    silos.Add(silo);
                    forwarded.Add(new BenchForwardedBytes(silo));
                    string url = silo.ReadyLine[(silo.ReadyLine.IndexOf("https://", StringComparison.Ordinal))..].Trim();
                    endpoints.Add(new Uri(url).Authority);
                    fronts.Add(new Uri(url));
                    await progress.WriteLineAsync($"cluster: slice silo {i} (process {silo.ProcessId}) serves agents on {url}").ConfigureAwait(false);
                }

                int port = FreePort();
                string coordinatorConfig = await WriteConfigAsync(dir, "coordinator.json", AggregatorSettings(setup, port, clusterData),
                    ClusterSection(FreePort(), FreePort(), connectionString, sliceSize, coordinator: true), cancellationToken).ConfigureAwait(false);
                BenchChildProcess coordinatorSilo = await BenchChildProcess.StartAsync("coordinator silo", coordinatorConfig, "aggregator listening on", cancellationToken).ConfigureAwait(false);
                silos.Add(coordinatorSilo);
                forwarded.Add(new BenchForwardedBytes(coordinatorSilo));
                endpoints.Add($"127.0.0.1:{port}");
                IReadOnlyList<Uri> given = via == ClusterBenchAgentsVia.Front ? fronts : [new Uri($"https://127.0.0.1:{port}")];
                await progress.WriteLineAsync(via == ClusterBenchAgentsVia.Front
                    ? $"cluster: coordinator silo (process {coordinatorSilo.ProcessId}) listening on 127.0.0.1:{port}; {n} agents start, each given one slice silo's endpoint only ({string.Join(", ", fronts.Select(f => f.Authority))}, in turn): control calls forwarded to the coordinator"
                    : $"cluster: coordinator silo (process {coordinatorSilo.ProcessId}) listening on 127.0.0.1:{port}; {n} agents start").ConfigureAwait(false);
                siloIdle = [.. silos.Select(s => s.Probe.RssBytes)];
                double[] cpu0 = [.. silos.Select(s => s.Probe.CpuSeconds)];
                var unmasking = new BenchUnmaskWatch(coordinatorSilo, silos);
                cluster = await RunAgentsAsync(setup, given, "cluster-agents", coordinatorSilo, silos, progress, cancellationToken).ConfigureAwait(false);
                clusterUnmask = unmasking.Seconds;
                siloUnmaskCpu = unmasking.CpuSeconds;
                await coordinatorSilo.WaitForExitAsync(ExitTimeout, cancellationToken).ConfigureAwait(false);
                foreach (BenchChildProcess silo in silos)
                {
                    silo.Probe.Sample();
                }

                siloPeak = [.. silos.Select(s => s.Probe.PeakRssBytes)];
                siloCpu = [.. silos.Select((s, i) => Math.Round(s.Probe.CpuSeconds - cpu0[i], 3))];
                // The coordinator has exited (its line is in); the fronts' last forwarded calls ended before the agents did.
                siloForwarded = [.. forwarded.Select(f => f.RequestBytes)];
                siloReturned = [.. forwarded.Select(f => f.ResponseBytes)];
                fromFronts = forwarded[^1].FromFronts;
            }
            finally
            {
                foreach (BenchChildProcess silo in silos)
                {
                    await silo.DisposeAsync().ConfigureAwait(false);
                }
            }

            (byte[] clusterModel, double clusterAfterInput) = LoadRound(setup, clusterData);
            await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"cluster: round {cluster.RoundSeconds:F1} s (unmasking {clusterUnmask:F3} s), peak RSS per silo {string.Join(" / ", siloPeak.Select(MiB))} MiB")).ConfigureAwait(false);

            bool inputsEqual = single.InputDigests.Count == n && sites.All(s =>
                single.InputDigests.TryGetValue(s, out string? a) && cluster.InputDigests.TryGetValue(s, out string? b) && a == b);
            string[] roles = [.. Enumerable.Range(0, options.Silos).Select(i => i == options.Silos - 1 ? Coordinator : "slices")];
            return new ClusterFrontBenchResult(
                "grpc", options.Silos, n, dropped.Count, stageTimeout, d, vectorWords, sliceSize, roles, 4L * vectorWords * (n - dropped.Count),
                cluster.RoundSeconds, siloPeak, siloIdle,
                [.. endpoints.Select(e => cluster.BytesByEndpoint.GetValueOrDefault(e))],
                siloCpu,
                single.RoundSeconds, singlePeak, singleIdle, single.BytesByEndpoint.GetValueOrDefault($"127.0.0.1:{singlePort}"), Math.Round(singleCpu, 3),
                LoadBenchProcessProbe.SelfPeakRssBytes(),
                cluster.Completed,
                inputsEqual,
                singleModel.AsSpan().SequenceEqual(clusterModel),
                !singleModel.AsSpan().SequenceEqual(WireEncoding.ModelBytes(new float[d])),
                Math.Round(wall.Elapsed.TotalSeconds, 3),
                via == ClusterBenchAgentsVia.Front ? "front" : Coordinator,
                Math.Round(singleUnmask, 3),
                singleAfterInput,
                singleUnmaskCpu,
                Math.Round(clusterUnmask, 3),
                clusterAfterInput,
                siloUnmaskCpu,
                siloForwarded,
                siloReturned,
                fromFronts);
        }
        finally
        {
            if (postgres is not null)
            {
                await postgres.DisposeAsync().ConfigureAwait(false);
            }

            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
                // a child process still holds a file; the folder is in the temporary directory
            }
        }
    }

    /// <summary>
    /// Runs every site's agent until the federation (one round) finishes; the i-th site (in name order) is given
    /// <paramref name="endpoints"/>[i mod count] only.
    /// </summary>
    private static async Task<SideOutcome> RunAgentsAsync(Setup setup, IReadOnlyList<Uri> endpoints, string run, BenchChildProcess aggregator, IReadOnlyList<BenchChildProcess> watched, TextWriter progress, CancellationToken cancellationToken)
    {
        var bytes = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var digests = new ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        var agents = new List<(AgentState State, BenchReplayRandomSource Random, Task Task)>();
        long started = Stopwatch.GetTimestamp();
        long lastReport = 0;
        int completed = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(RoundTimeout);
        try
        {
            foreach ((string site, int index) in setup.Provisioned.SiteKitDirectories.Keys.Order(StringComparer.Ordinal).Select((s, i) => (s, i)))
            {
                var options = new AgentOptions
                {
                    Site = site,
                    Aggregator = endpoints[index % endpoints.Count].ToString(),
                    KitDirectory = setup.Provisioned.SiteKitDirectories[site],
                    DataDirectory = Path.Combine(setup.Directory, run, site),
                    CallTimeoutSeconds = 600,
                    SiteEpsilonBudget = 1e12,
                    EpsilonBudget = 1e12,
                    MaxRounds = 1,
                };
                AgentState state = AgentState.Open(options);
                var random = new BenchReplayRandomSource(setup.Keys[site]);
#pragma warning disable CA2000 // the client owns the handler and is disposed when its agent ends
                HttpMessageHandler handler = new BenchWireCounter(new SocketsHttpHandler
                {
                    SslOptions = new SslClientAuthenticationOptions
                    {
                        ClientCertificates = [state.Kit.TlsCertificate],
                        RemoteCertificateValidationCallback = PeerTrust.AggregatorValidationCallback(state.Kit.Manifest),
                    },
                    ConnectTimeout = TimeSpan.FromSeconds(10),
                }, bytes);
#pragma warning restore CA2000
                var client = new AggregatorClient(options.AggregatorEndpoints(), state.Kit, TimeSpan.FromSeconds(options.CallTimeoutSeconds), options.MaxRetries, handler: handler);
                var runner = new AgentRunner(options, state.Kit, client, new LoadBenchCommand.SyntheticUpdateTrainer(site, setup.Parameters, setup.Spec.Sha256), state.Ledger, state.Audit, NullLogger.Instance)
                {
                    UpdateRandom = random,
                    InputCaptured = (_, input) => digests[site] = Convert.ToHexStringLower(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(input.AsSpan()))),
                    Dropout = setup.Dropped.Contains(site) ? new DropoutHook(0, ProtocolStage.MaskedInputCollection) : null,
                };
                runner.RoundFinished += (_, report) =>
                {
                    Interlocked.Exchange(ref lastReport, Stopwatch.GetTimestamp());
                    if (report.Completed)
                    {
                        Interlocked.Increment(ref completed);
                    }
                };
                Task task = Task.Run(async () =>
                {
                    try
                    {
                        await runner.RunAsync(stop.Token).ConfigureAwait(false);
                    }
                    finally
                    {
                        client.Dispose();
                    }
                }, CancellationToken.None);
                agents.Add((state, random, task));
            }

            Task all = Task.WhenAll(agents.Select(a => a.Task));
            while (await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(10), CancellationToken.None)).ConfigureAwait(false) != all)
            {
                // Any silo, not only the coordinator: agents wait for a front that is gone (they never give up on an absent
                // aggregator), so a crashed silo would otherwise hold the bench until the round timeout.
                if (watched.Prepend(aggregator).FirstOrDefault(p => p.HasExited) is { } exited)
                {
                    throw new InvalidOperationException($"the {exited.Name} exited before the agents finished:\n  {exited.Tail}");
                }

                // Each process's resident set now (and its peak so far): where in the round the memory goes.
                string memory = string.Join(", ", watched.Select(p => $"{p.Name} {MiB(p.Probe.RssBytes)} ({MiB(p.Probe.PeakRssBytes)})"));
                await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"  {run}: {Stopwatch.GetElapsedTime(started).TotalSeconds:F0} s, {bytes.Values.Sum() / 1048576.0:F0} MiB sent, {Volatile.Read(ref completed)} of {agents.Count} rounds completed; RSS (peak) MiB: {memory}")).ConfigureAwait(false);
            }

            await all.ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            foreach ((AgentState state, BenchReplayRandomSource random, Task task) in agents)
            {
                try
                {
                    await task.WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or Grpc.Core.RpcException or HttpRequestException or Agent.AggregatorTrustException or Agent.AggregatorRefusedSiteException)
                {
                    // an agent stopped mid-call; the failure that matters has been thrown above
                }

                state.Dispose();
                random.Dispose();
            }
        }

        int surviving = agents.Count - setup.Dropped.Count;
        if (completed != surviving)
        {
            throw new InvalidOperationException($"{run}: {completed} of the {surviving} surviving agents ({setup.Dropped.Count} dropped) completed the round; the aggregator said:\n  {aggregator.Tail}");
        }

        long opened = aggregator.RoundOpenedTimestamp;
        double seconds = Stopwatch.GetElapsedTime(opened != 0 ? opened : started, Interlocked.Read(ref lastReport)).TotalSeconds;
        return new SideOutcome(Math.Round(seconds, 3), completed, new Dictionary<string, long>(bytes, StringComparer.Ordinal), new Dictionary<string, string>(digests, StringComparer.Ordinal));
    }

    /// <summary>The aggregator's settings, the same for the single process and the coordinator silo.</summary>
    private static Dictionary<string, object> AggregatorSettings(Setup setup, int port, string dataDirectory)
    {
        var settings = new Dictionary<string, object>
        {
            ["Federation"] = setup.Federation,
            ["Listen"] = $"https://127.0.0.1:{port}",
            ["KitDirectory"] = setup.Provisioned.AggregatorKitDirectory,
            ["DataDirectory"] = dataDirectory,
            ["InitialModel"] = setup.ModelPath,
            ["ModelSpec"] = setup.SpecPath,
            ["Rounds"] = "1",
            ["FederatedEvaluation"] = "false",
        };
        foreach ((string key, string value) in LoadBenchCommand.AggregatorSettings(setup.Agents, new AggregatorOptions().MaxConcurrentUploads))
        {
            settings[key] = value;
        }

        settings["StageTimeoutSeconds"] = setup.StageTimeoutSeconds.ToString(CultureInfo.InvariantCulture);

        // The dropped sites are waited for until the deadline on both sides, as the output says: a last-member cut
        // (StageStragglerMinWaitSeconds below the deadline) would close the masked-input stage up to a second early on
        // one side and not the other, depending on how fast the others uploaded.
        settings["StageStragglerMinWaitSeconds"] = setup.StageTimeoutSeconds.ToString(CultureInfo.InvariantCulture);

        return settings;
    }

    private static Dictionary<string, object> ClusterSection(int siloPort, int gatewayPort, string connectionString, int sliceSize, bool coordinator) => new()
    {
        ["SiloPort"] = siloPort,
        ["GatewayPort"] = gatewayPort,
        ["AdvertisedAddress"] = "127.0.0.1",
        ["ConnectionString"] = connectionString,
        ["SliceSize"] = sliceSize,
        ["Coordinator"] = coordinator,
    };

    private static async Task<string> WriteConfigAsync(string dir, string name, Dictionary<string, object> settings, Dictionary<string, object>? cluster, CancellationToken cancellationToken)
    {
        var secureFed = new Dictionary<string, object>(settings);
        if (cluster is not null)
        {
            secureFed["Cluster"] = cluster;
        }

        string path = Path.Combine(dir, name);
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(new Dictionary<string, object> { ["SecureFed"] = secureFed }), cancellationToken).ConfigureAwait(false);
        return path;
    }

    /// <summary>
    /// Model v1 (the fused model of the round) from an aggregator's round store, and the seconds from the close of round 1's
    /// masked-input stage (the time the store recorded it, just after the close) to the round's completion (the time the
    /// store recorded the model): the aggregator's own clock, so with dropped sites the time after the deadline.
    /// </summary>
    private static (byte[] Model, double AfterInputSeconds) LoadRound(Setup setup, string dataDirectory)
    {
        using AggregatorState state = AggregatorState.Open(new AggregatorOptions
        {
            Federation = setup.Federation,
            KitDirectory = setup.Provisioned.AggregatorKitDirectory,
            DataDirectory = dataDirectory,
            InitialModel = setup.ModelPath,
        });
        byte[] model = state.Store.LoadModel(1) ?? throw new InvalidOperationException($"the aggregator in {dataDirectory} has no model v1");
        RoundRecord round = state.Store.ListRounds().SingleOrDefault(r => r.Round == 1)
            ?? throw new InvalidOperationException($"the aggregator in {dataDirectory} has no round 1");
        StageRecord maskedInput = round.Stages.FirstOrDefault(s => s.Stage == "masked_input")
            ?? throw new InvalidOperationException($"round 1 in {dataDirectory} has no masked_input stage (stages: {string.Join(", ", round.Stages.Select(s => s.Stage))})");
        DateTimeOffset ended = round.EndedUtc ?? throw new InvalidOperationException($"round 1 in {dataDirectory} has not ended");
        return (model, Math.Round((ended - maskedInput.RecordedUtc).TotalSeconds, 3));
    }

    private static string MiB(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);

    private static int FreePort() => LoopbackPorts.Next();

    private sealed record Setup(string Directory, string Federation, ProvisionResult Provisioned, ModelSpec Spec, string SpecPath, string ModelPath, int Agents, int Parameters,
        Dictionary<string, byte[]> Keys, HashSet<string> Dropped, int StageTimeoutSeconds);

    private sealed record SideOutcome(double RoundSeconds, int Completed, Dictionary<string, long> BytesByEndpoint, Dictionary<string, string> InputDigests);
}
