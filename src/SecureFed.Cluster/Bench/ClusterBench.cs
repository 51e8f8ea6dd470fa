using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Bench;

/// <summary>
/// <c>securefed bench cluster</c>: one round on an aggregator cluster of separate silo processes on 127.0.0.1 (ledger in
/// PostgreSQL) and, in the same run, on a single-process reference (one more process hosting one unsliced
/// <see cref="ServerRound"/>, <see cref="IReferenceRoundGrain"/>). The sites are simulated in this process (real
/// <see cref="ClientRound"/>s, random updates encoded with the product's <see cref="UpdateCodec"/>); every message goes to
/// both sides, so both see the same inputs. Each slice is sent through a client connected to the gateway of the silo
/// that hosts it. Both sums are turned into the fused model with <see cref="FederatedAveraging.ApplyAggregate"/> and
/// compared bit for bit.
/// </summary>
public static class ClusterBench
{
    /// <summary>The cluster id (federation) of the benchmark's cluster.</summary>
    public const string ClusterFederation = "bench-cluster";

    /// <summary>The cluster id of the single-process reference.</summary>
    public const string SingleFederation = "bench-single";

    private static readonly TimeSpan CallTimeout = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan IdleWindow = TimeSpan.FromSeconds(10);

    /// <summary>Runs the benchmark.</summary>
    /// <param name="options">Sizes; validated (<see cref="ClusterBenchOptions.Validate"/>).</param>
    /// <param name="cli">Start information of the <c>securefed</c> CLI with the given arguments (the silos run <c>aggregator --config</c>).</param>
    /// <param name="progress">Progress lines.</param>
    /// <param name="cancellationToken">Stops the run.</param>
    /// <exception cref="ArgumentException">The options are not valid; the message lists every problem.</exception>
    public static async Task<ClusterBenchResult> RunAsync(ClusterBenchOptions options, Func<IReadOnlyList<string>, ProcessStartInfo> cli, TextWriter progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cli);
        ArgumentNullException.ThrowIfNull(progress);
        List<string> problems = [.. options.Validate(), .. options.ValidateGrainLevel()];
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join("\n", problems), nameof(options));
        }

        var wall = Stopwatch.StartNew();
        string dir = Directory.CreateTempSubdirectory("securefed-bench-cluster-").FullName;
        ThrowawayPostgres? postgres = null;
        var silos = new List<BenchSilo>();
        var clients = new List<IHost>();
        try
        {
            string connectionString = options.ConnectionString ?? (postgres = await ThrowawayPostgres.StartAsync("securefed_bench", cancellationToken).ConfigureAwait(false)).ConnectionString;
            // One silo first (it creates the membership schema; later ones would wait on its lock anyway), then the other
            // silos and the single-process reference together. Membership is in PostgreSQL: no silo is primary.
            silos.Add(await BenchSilo.StartAsync(cli, dir, ClusterFederation, FreePort(), FreePort(), connectionString, cancellationToken).ConfigureAwait(false));
            int singlePort = FreePort();
            Task<BenchSilo>[] starting =
            [
                .. Enumerable.Range(1, options.Silos - 1).Select(_ => BenchSilo.StartAsync(cli, dir, ClusterFederation, FreePort(), FreePort(), connectionString, cancellationToken)),
                BenchSilo.StartAsync(cli, dir, SingleFederation, singlePort, FreePort(), connectionString, cancellationToken),
            ];
            try
            {
                await Task.WhenAll(starting).ConfigureAwait(false);
            }
            finally
            {
                silos.AddRange(starting.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result));
            }

            BenchSilo single = silos[^1];
            await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"{options.Silos} silo processes ({string.Join(", ", silos.Take(options.Silos).Select(s => s.ProcessId))}) and the single-process reference ({single.ProcessId}) started")).ConfigureAwait(false);

            // One client per silo, connected to that silo's gateway only, so that each slice enters the cluster where it lives.
            foreach (BenchSilo silo in silos)
            {
                clients.Add(await StartClientAsync(silo == single ? SingleFederation : ClusterFederation, silo.GatewayPort, cancellationToken).ConfigureAwait(false));
            }

            IClusterClient main = clients[0].Services.GetRequiredService<IClusterClient>();
            IClusterClient reference = clients[^1].Services.GetRequiredService<IClusterClient>();
            await AssignAddressesAsync(main, silos.Take(options.Silos).ToList(), cancellationToken).ConfigureAwait(false);
            await AssignAddressesAsync(reference, [single], cancellationToken).ConfigureAwait(false);
            SiloStats[] before = await StatsAsync(clients, silos, cancellationToken).ConfigureAwait(false);
            var window = Stopwatch.StartNew();
            RoundOutcome outcome = await RunRoundAsync(options, clients, silos, progress, cancellationToken).ConfigureAwait(false);
            SiloStats[] after = await StatsAsync(clients, silos, cancellationToken).ConfigureAwait(false);
            double windowSeconds = Math.Round(window.Elapsed.TotalSeconds, 3);

            // What an idle process costs (membership probes, timers), measured after the round, so that the round's CPU
            // can be read against it (right after start-up the processes are still busy joining and compiling).
            var idle = Stopwatch.StartNew();
            await Task.Delay(IdleWindow, cancellationToken).ConfigureAwait(false);
            SiloStats[] idleEnd = await StatsAsync(clients, silos, cancellationToken).ConfigureAwait(false);
            double idleSeconds = idle.Elapsed.TotalSeconds;
            double[] idleCpu = [.. Enumerable.Range(0, silos.Count).Select(i => Math.Round((idleEnd[i].CpuSeconds - after[i].CpuSeconds) / idleSeconds, 4))];
            int s = options.Silos;
            return new ClusterBenchResult(
                s, options.Agents, options.Parameters, options.Parameters + 1, options.Dropped, outcome.Slices, outcome.SliceSilo, outcome.MaskedInputBytes,
                outcome.ClusterSeconds,
                [.. after.Take(s).Select(x => x.PeakRssBytes)],
                [.. before.Take(s).Select(x => x.RssBytes)],
                [.. Enumerable.Range(0, s).Select(i => after[i].BytesReceived - before[i].BytesReceived)],
                [.. Enumerable.Range(0, s).Select(i => Math.Round(after[i].CpuSeconds - before[i].CpuSeconds, 3))],
                idleCpu[..s],
                outcome.SingleSeconds,
                after[s].PeakRssBytes,
                before[s].RssBytes,
                after[s].BytesReceived - before[s].BytesReceived,
                Math.Round(after[s].CpuSeconds - before[s].CpuSeconds, 3),
                idleCpu[s],
                windowSeconds,
                outcome.Contributors, outcome.SumsExact, outcome.ModelsEqual, outcome.LedgerRecorded, Math.Round(wall.Elapsed.TotalSeconds, 3));
        }
        finally
        {
            foreach (IHost client in clients)
            {
                try
                {
                    await client.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is TimeoutException or OperationCanceledException or OrleansException)
                {
                    // the silos are killed next anyway
                }

                client.Dispose();
            }

            foreach (BenchSilo silo in silos)
            {
                silo.Dispose();
            }

            if (postgres is not null)
            {
                await postgres.DisposeAsync().ConfigureAwait(false);
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<RoundOutcome> RunRoundAsync(ClusterBenchOptions options, List<IHost> clients, List<BenchSilo> silos, TextWriter progress, CancellationToken ct)
    {
        int n = options.Agents;
        int d = options.Parameters;
        IClusterClient main = clients[0].Services.GetRequiredService<IClusterClient>();
        IClusterClient referenceClient = clients[^1].Services.GetRequiredService<IClusterClient>();
        Ed25519PrivateKey[] identities = [.. Enumerable.Range(0, n).Select(_ => Ed25519PrivateKey.Generate())];
        var clientRounds = new List<ClientRound>();
        try
        {
            Participant[] participants = [.. Enumerable.Range(1, n).Select(i => new Participant(i, string.Create(CultureInfo.InvariantCulture, $"site-{i:D3}"), identities[i - 1].PublicKey))];
            // The single process's defaults up to 512 sites: the complete graph and an honest-majority threshold.
            var parameters = new RoundParameters(ClusterFederation, 1, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)), participants, (n / 2) + 1, n - 1, d + 1, 32);
            UpdateCodec codec = UpdateCodec.Plan(d, clipBound: 1.0, cohortSize: n, noiseHeadroom: 0, weightCap: 1000);
            int sliceSize = (int)(((long)parameters.VectorLength + options.Silos - 1) / options.Silos);
            var spec = ClusterRoundSpec.From(parameters, sliceSize);
            clientRounds.AddRange(participants.Select(p => new ClientRound(parameters, p.Name, identities[p.Index - 1])));

            var clusterTime = new Stopwatch();
            var singleTime = new Stopwatch();
            async Task<T> OnCluster<T>(Func<Task<T>> call)
            {
                clusterTime.Start();
                try
                {
                    return await call().WaitAsync(CallTimeout, ct).ConfigureAwait(false);
                }
                finally
                {
                    clusterTime.Stop();
                }
            }

            async Task<T> OnSingle<T>(Func<Task<T>> call)
            {
                singleTime.Start();
                try
                {
                    return await call().WaitAsync(CallTimeout, ct).ConfigureAwait(false);
                }
                finally
                {
                    singleTime.Stop();
                }
            }

            var cluster = new ClusterRoundClient(main, ClusterFederation, 1);
            IReferenceRoundGrain single = referenceClient.GetGrain<IReferenceRoundGrain>(ClusterKeys.Round(ClusterFederation, 1));
            await OnCluster(async () =>
            {
                await cluster.OpenAsync(spec, ct).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
            await OnSingle(async () =>
            {
                await single.OpenAsync(spec).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);

            // Route each slice through the client of the silo that hosts it.
            SliceLayout layout = spec.Layout;
            int[] sliceSilo = new int[layout.Count];
            for (int k = 0; k < layout.Count; k++)
            {
                string host = await cluster.Slice(k).SiloAsync().WaitAsync(CallTimeout, ct).ConfigureAwait(false);
                sliceSilo[k] = silos.FindIndex(0, options.Silos, s => string.Equals(s.Address, host, StringComparison.Ordinal));
                if (sliceSilo[k] < 0)
                {
                    throw new InvalidOperationException($"slice {k} is on {host}, which is not one of the benchmark's silos");
                }

                cluster.RouteSlice(k, clients[sliceSilo[k]].Services.GetRequiredService<IClusterClient>());
            }

            await progress.WriteLineAsync($"round opened: {n} sites, {layout.Count} slices on silos [{string.Join(", ", sliceSilo)}]").ConfigureAwait(false);

            // Stage 0: keys.
            foreach (ClientRound c in clientRounds)
            {
                KeyAdvertisement ad = c.AdvertiseKeys();
                await OnCluster(() => cluster.Round.AcceptAdvertisementAsync(ad)).ConfigureAwait(false);
                await OnSingle(() => single.AcceptAdvertisementAsync(ad)).ConfigureAwait(false);
            }

            Same("keys", await OnCluster(cluster.Round.CloseAdvertiseKeysAsync).ConfigureAwait(false), await OnSingle(single.CloseAdvertiseKeysAsync).ConfigureAwait(false));

            // Stage 1: shares.
            foreach (ClientRound c in clientRounds)
            {
                KeyAdvertisement[] ads = await OnCluster(() => cluster.Round.AdvertisementsForAsync(c.Index)).ConfigureAwait(false);
                _ = await OnSingle(() => single.AdvertisementsForAsync(c.Index)).ConfigureAwait(false);
                EncryptedShare[] shares = [.. c.ShareKeys(ads)];
                await OnCluster(() => cluster.Round.AcceptSharesAsync(c.Index, shares)).ConfigureAwait(false);
                await OnSingle(() => single.AcceptSharesAsync(c.Index, shares)).ConfigureAwait(false);
            }

            Same("shares", await OnCluster(cluster.Round.CloseShareKeysAsync).ConfigureAwait(false), await OnSingle(single.CloseShareKeysAsync).ConfigureAwait(false));

            // Stage 2: masked inputs; sites 1..dropped have shared their keys and now go silent.
            uint[] expected = new uint[parameters.VectorLength];
            long maskedBytes = 0;
            foreach (ClientRound c in clientRounds.Skip(options.Dropped))
            {
                EncryptedShare[] forMe = await OnCluster(() => cluster.Round.SharesForAsync(c.Index)).ConfigureAwait(false);
                _ = await OnSingle(() => single.SharesForAsync(c.Index)).ConfigureAwait(false);
                uint[] masked = MaskedInput(c, forMe, codec, d, expected);
                await OnCluster(async () =>
                {
                    await cluster.SendMaskedInputAsync(c.Index, masked, ct).ConfigureAwait(false);
                    return true;
                }).ConfigureAwait(false);
                await OnSingle(() => single.AcceptMaskedInputAsync(c.Index, masked)).ConfigureAwait(false);
                maskedBytes += 4L * masked.Length;
                await progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                    $"site {c.Index}: masked input of {masked.Length:N0} words sent to both (cluster {clusterTime.Elapsed.TotalSeconds:F1} s, single {singleTime.Elapsed.TotalSeconds:F1} s so far)")).ConfigureAwait(false);
            }

            int[] survivors = await OnCluster(cluster.Round.CloseMaskedInputAsync).ConfigureAwait(false);
            Same("masked inputs", survivors, await OnSingle(single.CloseMaskedInputAsync).ConfigureAwait(false));

            // Stage 3: consistency.
            foreach (int u in survivors)
            {
                ConsistencySignature signature = clientRounds[u - 1].SignSurvivors(survivors);
                await OnCluster(() => cluster.Round.AcceptConsistencySignatureAsync(signature)).ConfigureAwait(false);
                await OnSingle(() => single.AcceptConsistencySignatureAsync(signature)).ConfigureAwait(false);
            }

            UnmaskRequest request = await OnCluster(cluster.Round.CloseConsistencyAsync).ConfigureAwait(false);
            Same("unmask request", request.Dropped, (await OnSingle(single.CloseConsistencyAsync).ConfigureAwait(false)).Dropped);

            // Stage 4: unmasking.
            foreach (ConsistencySignature signer in request.Signatures)
            {
                UnmaskResponse response = clientRounds[signer.Sender - 1].Unmask(request);
                await OnCluster(() => cluster.Round.AcceptUnmaskResponseAsync(response)).ConfigureAwait(false);
                await OnSingle(() => single.AcceptUnmaskResponseAsync(response)).ConfigureAwait(false);
            }

            AggregationResult clustered = await OnCluster(() => cluster.FinishAsync(ct)).ConfigureAwait(false);
            ReferenceRoundResult reference = await OnSingle(single.FinishAsync).ConfigureAwait(false);
            Same("contributors", [.. clustered.Contributors], reference.Contributors);
            bool recorded = await cluster.RecordAsync(spec.SessionId, clustered, participants, null, ct).WaitAsync(CallTimeout, ct).ConfigureAwait(false);

            // The fused model, as the aggregator forms it from the sum (base model zero, server learning rate 1).
            float[] baseModel = new float[d];
            float[] fusedCluster = FederatedAveraging.ApplyAggregate(baseModel, codec, clustered.Sum, 1.0, out _);
            float[] fusedSingle = FederatedAveraging.ApplyAggregate(baseModel, codec, reference.Sum, 1.0, out _);
            bool modelsEqual = MemoryMarshal.AsBytes(fusedCluster.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(fusedSingle.AsSpan()));
            bool sumsExact = clustered.Sum.AsSpan().SequenceEqual(expected) && reference.Sum.AsSpan().SequenceEqual(expected);
            return new RoundOutcome(layout.Count, sliceSilo, maskedBytes, Math.Round(clusterTime.Elapsed.TotalSeconds, 3), Math.Round(singleTime.Elapsed.TotalSeconds, 3),
                clustered.Contributors.Count, sumsExact, modelsEqual, recorded);
        }
        finally
        {
            foreach (ClientRound c in clientRounds)
            {
                c.Dispose();
            }

            foreach (Ed25519PrivateKey identity in identities)
            {
                identity.Dispose();
            }
        }
    }

    /// <summary>A random update of site <paramref name="c"/>, encoded and masked; its plain input is added into <paramref name="expected"/>.</summary>
    private static uint[] MaskedInput(ClientRound c, EncryptedShare[] forMe, UpdateCodec codec, int d, uint[] expected)
    {
        var random = new Random(c.Index);
        float[] update = new float[d];
        for (int i = 0; i < update.Length; i++)
        {
            update[i] = (random.NextSingle() - 0.5f) * 0.02f;
        }

        uint[] input = new uint[codec.VectorLength];
        codec.Encode(update, 100, input, SystemRandomSource.Instance);
        ModularVector.Add(expected, input, 32);
        uint[] masked = new uint[codec.VectorLength];
        c.MaskInput(forMe, input, masked);
        return masked;
    }

    private static void Same(string what, int[] cluster, int[] single)
    {
        if (!cluster.AsSpan().SequenceEqual(single))
        {
            throw new InvalidOperationException($"the cluster and the single process disagree on the {what}: [{string.Join(", ", cluster)}] vs [{string.Join(", ", single)}]");
        }
    }

    private static void Same(string what, IReadOnlyList<int> cluster, IReadOnlyList<int> single) => Same(what, [.. cluster], [.. single]);

    private static async Task<IHost> StartClientAsync(string clusterId, int gatewayPort, CancellationToken cancellationToken)
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleansClient(client =>
        {
            client.UseStaticClustering(new IPEndPoint(IPAddress.Loopback, gatewayPort));
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = clusterId;
                o.ServiceId = ClusterHost.ServiceId;
            });
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = CallTimeout);
        });
        IHost host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken).WaitAsync(TimeSpan.FromMinutes(1), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            host.Dispose();
            throw;
        }

        return host;
    }

    /// <summary>Waits until the cluster has all <paramref name="silos"/> active and gives each its address (matched by silo port).</summary>
    private static async Task AssignAddressesAsync(IClusterClient client, IReadOnlyList<BenchSilo> silos, CancellationToken cancellationToken)
    {
        IManagementGrain management = client.GetGrain<IManagementGrain>(0);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            Dictionary<SiloAddress, SiloStatus> hosts = await management.GetHosts(onlyActive: true).WaitAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
            if (hosts.Count == silos.Count)
            {
                foreach (BenchSilo silo in silos)
                {
                    silo.Address = hosts.Keys.Single(a => a.Endpoint.Port == silo.SiloPort).ToParsableString();
                }

                return;
            }

            if (deadline.Elapsed > TimeSpan.FromMinutes(2))
            {
                throw new InvalidOperationException($"the cluster has {hosts.Count} active silos after 2 minutes, expected {silos.Count}");
            }

            await Task.Delay(250, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<SiloStats[]> StatsAsync(List<IHost> clients, List<BenchSilo> silos, CancellationToken cancellationToken)
    {
        var stats = new SiloStats[silos.Count];
        for (int i = 0; i < silos.Count; i++)
        {
            IClusterClient client = clients[i].Services.GetRequiredService<IClusterClient>();
            stats[i] = await client.GetGrain<ISiloStatsGrain>(silos[i].Address).StatsAsync().WaitAsync(CallTimeout, cancellationToken).ConfigureAwait(false);
        }

        return stats;
    }

    private static int FreePort() => LoopbackPorts.Next();

    private sealed record RoundOutcome(int Slices, int[] SliceSilo, long MaskedInputBytes, double ClusterSeconds, double SingleSeconds, int Contributors,
        bool SumsExact, bool ModelsEqual, bool LedgerRecorded);
}
