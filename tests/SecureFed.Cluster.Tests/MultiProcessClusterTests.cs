using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using SecureFed.Cluster.Grains;
using SecureFed.Protocol;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// Three silo processes on 127.0.0.1 with the ledger in PostgreSQL; one is killed mid masked-input, with a slice spill
/// open: no spill file is on disk by name before or after the kill (<c>SecureFed:Cluster:SpillDirectory</c> is the
/// test's own directory).
/// </summary>
public sealed class MultiProcessClusterTests : IClassFixture<PostgresServer>
{
    private const string Federation = "multi-process";
    private readonly PostgresServer _postgres;
    private readonly ITestOutputHelper _output;

    public MultiProcessClusterTests(PostgresServer postgres, ITestOutputHelper output)
    {
        _postgres = postgres;
        _output = output;
    }

    [SkippableFact]
    public async Task Rounds_ThreeSiloProcessesOneKilledMidInput_AbortWithReasonThenNextRoundEqualsSingleProcess()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        string dir = Directory.CreateTempSubdirectory("securefed-silos-").FullName;
        string spills = Path.Combine(dir, "spills");
        var cluster = new Dictionary<string, object> { ["SpillDirectory"] = spills };
        var silos = new List<SiloProcess>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                silos.Add(await SiloProcess.StartAsync(dir, Federation, SiloProcess.FreePort(), SiloProcess.FreePort(), _postgres.ConnectionString, null, null, null, cluster, readyLine: null));
            }

            using IHost client = await StartClientAsync(silos);
            IClusterClient grains = client.Services.GetRequiredService<IClusterClient>();
            await WaitForActiveSilosAsync(grains, 3);

            // Round 1 completes on three processes and equals the single-process ServerRound bit for bit.
            const int M = 3_001;
            using (var first = new RoundScript(8, seed: 31, round: 1, M, bitWidth: 32, degree: 7, federation: Federation))
            {
                var round = new ClusterRoundClient(grains, Federation, 1);
                var spec = ClusterRoundSpec.From(first.Parameters, 1_024);
                await round.OpenAsync(spec, CancellationToken.None).WaitAsync(RoundScript.Timeout);
                await first.ThroughShareKeysAsync(round, [8]);
                await first.SendMaskedInputsAsync(round, Enumerable.Range(1, 6));
                (AggregationResult single, AggregationResult clustered) = await first.FinishAsync(round, []);
                Assert.Equal(single.Sum, clustered.Sum);
                Assert.True(await round.RecordAsync(spec.SessionId, clustered, spec.Participants, null, CancellationToken.None));
            }

            // Round 2: a silo process hosting a slice (not the first started) is killed during the masked-input stage.
            string? reason = null;
            using (var second = new RoundScript(8, seed: 32, round: 2, M, bitWidth: 32, degree: 7, federation: Federation))
            {
                var round = new ClusterRoundClient(grains, Federation, 2);
                var spec = ClusterRoundSpec.From(second.Parameters, 1_024);
                await round.OpenAsync(spec, CancellationToken.None).WaitAsync(RoundScript.Timeout);
                await second.ThroughShareKeysAsync(round, []);
                await second.SendMaskedInputsAsync(round, [1, 2, 3]);
                var hosts = new List<string>();
                for (int k = 0; k < 3; k++)
                {
                    hosts.Add(await grains.GetGrain<ISliceGrain>(ClusterKeys.Slice(round.RoundKey, k)).SiloAsync().WaitAsync(RoundScript.Timeout));
                }

                SiloProcess victim = silos.Skip(1).First(s => hosts.Any(h => h.Contains($":{s.SiloPort}@", StringComparison.Ordinal)));

                // Site 4 starts streaming its chunk of a slice the victim hosts: a spill is open in the victim, unlinked.
                int victimSlice = hosts.FindIndex(h => h.Contains($":{victim.SiloPort}@", StringComparison.Ordinal));
                ISliceGrain slice = grains.GetGrain<ISliceGrain>(ClusterKeys.Slice(round.RoundKey, victimSlice));
                uint[] words = [.. Enumerable.Range(0, 100).Select(i => (uint)i * 2_654_435_761u)];
                long upload = await slice.BeginChunkAsync(4, new string('0', 64)).WaitAsync(RoundScript.Timeout);
                await slice.AddPieceAsync(4, upload, 0, new Orleans.Concurrency.Immutable<uint[]>(words), words.Length).WaitAsync(RoundScript.Timeout);
                Assert.Empty(SpillFiles(spills));
                if (OperatingSystem.IsLinux())
                {
                    string[] open = OpenDeletedSpills(victim.ProcessId);
                    Assert.True(open.Length == 1, $"the victim should hold one unlinked spill open, found: {string.Join(", ", open)}");
                }

                victim.Kill();
                Assert.Empty(SpillFiles(spills)); // a killed silo leaves no spill file behind
                try
                {
                    await second.SendMaskedInputsAsync(round, [4, 5, 6, 7, 8]);
                    await round.Round.CloseMaskedInputAsync().WaitAsync(RoundScript.Timeout);
                }
                catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
                {
                    reason = $"{ex.GetType().Name}: {ex.Message}";
                }

                Assert.NotNull(reason);
                _output.WriteLine($"round 2 aborted after killing silo {victim.SiloPort}: {reason}");

                // Recorded once membership has declared the dead silo (the ledger grain may have lived there; its state is in PostgreSQL).
                await WaitForActiveSilosAsync(grains, 2);
                await round.RecordAsync(spec.SessionId, null, spec.Participants, reason, CancellationToken.None).WaitAsync(RoundScript.Timeout);
            }

            // Round 3 runs on the two processes left.
            using (var third = new RoundScript(8, seed: 33, round: 3, M, bitWidth: 32, degree: 7, federation: Federation))
            {
                var round = new ClusterRoundClient(grains, Federation, 3);
                var spec = ClusterRoundSpec.From(third.Parameters, 1_024);
                await round.OpenAsync(spec, CancellationToken.None).WaitAsync(RoundScript.Timeout);
                await third.ThroughShareKeysAsync(round, []);
                await third.SendMaskedInputsAsync(round, Enumerable.Range(2, 7));
                (AggregationResult single, AggregationResult clustered) = await third.FinishAsync(round, []);
                Assert.Equal(single.Sum, clustered.Sum);
                Assert.Equal(third.ExpectedSum(Enumerable.Range(2, 7)), clustered.Sum);
                Assert.True(await round.RecordAsync(spec.SessionId, clustered, spec.Participants, null, CancellationToken.None));
            }

            // Nothing completed is lost: the ledger (in PostgreSQL) has round 1 and 3 completed, round 2 aborted with the reason.
            LedgerEntry[] ledger = await grains.GetGrain<ILedgerGrain>(Federation).EntriesAsync().WaitAsync(RoundScript.Timeout);
            Assert.True(Assert.Single(ledger, e => e.Round == 1).Completed);
            LedgerEntry aborted = Assert.Single(ledger, e => e.Round == 2);
            Assert.False(aborted.Completed);
            Assert.Equal(reason, aborted.AbortReason);
            Assert.True(Assert.Single(ledger, e => e.Round == 3).Completed);
            await client.StopAsync().WaitAsync(RoundScript.Timeout);
        }
        finally
        {
            foreach (SiloProcess silo in silos)
            {
                silo.Dispose();
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    private static Task<IHost> StartClientAsync(IReadOnlyList<SiloProcess> silos) => StartClientAsync(silos, Federation);

    private static string[] SpillFiles(string root) => Directory.Exists(root) ? Directory.GetFiles(root, "*.spill", SearchOption.AllDirectories) : [];

    /// <summary>The spill files process <paramref name="pid"/> holds open after they were unlinked (/proc/pid/fd: "… (deleted)").</summary>
    private static string[] OpenDeletedSpills(int pid)
        => [.. new DirectoryInfo($"/proc/{pid}/fd").EnumerateFileSystemInfos()
            .Select(fd => fd.LinkTarget ?? "")
            .Where(target => target.EndsWith(".spill (deleted)", StringComparison.Ordinal))];

    /// <summary>
    /// An Orleans client of <paramref name="federation"/>'s cluster through the gateways of <paramref name="silos"/>; with
    /// <paramref name="aggregatorKit"/> over the cluster's mutual TLS with that kit's certificate (silos that have the kit),
    /// else plain TCP (kit-less silos, <c>Tls</c> off).
    /// </summary>
    internal static async Task<IHost> StartClientAsync(IReadOnlyList<SiloProcess> silos, string federation, string? aggregatorKit = null)
    {
        SecureFed.Federation.PartyKit? kit = aggregatorKit is null ? null : SecureFed.Federation.PartyKit.Load(aggregatorKit); // lives as long as the client: its certificate is used on every connection
        HostApplicationBuilder builder = Host.CreateApplicationBuilder();
        builder.UseOrleansClient(client =>
        {
            client.UseStaticClustering([.. silos.Select(s => new IPEndPoint(IPAddress.Loopback, s.GatewayPort))]);
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = federation;
                o.ServiceId = ClusterHost.ServiceId;
            });
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(20));
            if (kit is not null)
            {
                client.UseTls(kit.TlsCertificate, tls => ClusterTls.Configure(tls, kit));
            }
        });
        IHost host = builder.Build();
        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return host;
    }

    private static async Task WaitForActiveSilosAsync(IClusterClient grains, int count)
    {
        IManagementGrain management = grains.GetGrain<IManagementGrain>(0);
        DateTime deadline = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            try
            {
                Dictionary<SiloAddress, SiloStatus> hosts = await management.GetHosts(onlyActive: true).WaitAsync(TimeSpan.FromSeconds(20));
                if (hosts.Count == count)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is TimeoutException or SiloUnavailableException or OrleansMessageRejectionException)
            {
                // the management grain's silo may be the dead one; ask again
            }

            Assert.True(DateTime.UtcNow < deadline, $"the cluster did not reach {count} active silos within 120 s");
            await Task.Delay(500);
        }
    }
}
