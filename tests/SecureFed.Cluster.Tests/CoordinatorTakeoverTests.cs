using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Cluster.Grains;
using SecureFed.Federation;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The must-show of the coordinator lease (docs/cluster.md §6): three <c>securefed aggregator</c> silo processes on
/// 127.0.0.1 and PostgreSQL — two coordinator-eligible, one hosting slices only — and four agents over mTLS given both
/// coordinator-eligible endpoints. The coordinator process is killed during round 2; the other eligible silo takes the
/// lease over, restores the state the first saved, aborts round 2 with a reason, and round 3 completes there.
/// </summary>
public sealed class CoordinatorTakeoverTests : IClassFixture<PostgresServer>, IDisposable
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(5);
    private static readonly string[] Sites = ["site-a", "site-b", "site-c", "site-d"];
    private static readonly Dictionary<string, object> ShortLease = new() { ["LeaseSeconds"] = 6, ["LeaseRenewSeconds"] = 1, ["LeaseSafetyMarginSeconds"] = 2 };
    private readonly PostgresServer _postgres;
    private readonly ITestOutputHelper _output;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-takeover-").FullName;

    public CoordinatorTakeoverTests(PostgresServer postgres, ITestOutputHelper output)
    {
        _postgres = postgres;
        _output = output;
    }

    [SkippableFact]
    public async Task Rounds_CoordinatorKilledMidRound_OtherSiloTakesOverNothingCompletedLostNextRoundCompletes()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string federation = "takeover-front";
        const int rounds = 2;
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), federation, Sites);
        using Takeover cluster = await StartAsync(fed, federation, "takeover_front", rounds, agentListen: null);
        (SiloProcess slices, SiloProcess a, SiloProcess b) = (cluster.Other, cluster.A, cluster.B);
        (string dataA, string dataB, int portA, int portB) = (cluster.DataA, cluster.DataB, cluster.PortA, cluster.PortB);

        // The agents know both coordinator-eligible silos. The first masked-input upload after round 1 completed kills A.
        int exit = await RunAgentsKillingAAsync(fed, cluster, [new($"https://127.0.0.1:{portA}"), new($"https://127.0.0.1:{portB}")], calls: null);
        _output.WriteLine("--- silo A ---\n" + a.Output + "\n--- silo B ---\n" + b.Output);
        Assert.Equal(0, exit);
        Assert.Contains("coordinator lease acquired (epoch 2)", b.Output, StringComparison.Ordinal);

        // A's own files, as it left them when killed.
        byte[] modelOfA;
        using (AggregatorStore storeA = AggregatorStore.Open(AggregatorState.StorePath(dataA)))
        {
            Assert.Equal(RoundStatus.Completed, storeA.GetRound(1)!.Status);
            modelOfA = storeA.LoadModel(1)!;
        }

        string[] ledgerOfA = File.ReadAllLines(AggregatorState.PrivacyLedgerPath(dataA));
        string[] auditOfA = File.ReadAllLines(Path.Combine(AggregatorState.AuditDirectory(dataA), AuditLog.LogFileName));

        string? interruptedReason;
        using (AggregatorStore storeB = AggregatorStore.Open(AggregatorState.StorePath(dataB)))
        {
            IReadOnlyList<RoundRecord> records = storeB.ListRounds();
            foreach (RoundRecord r in records)
            {
                _output.WriteLine($"round {r.Round}: {r.Status} {r.AbortReason}");
            }

            // Round 1 (completed on A) and its model are kept bit for bit; round 2 (open on A) is aborted with the reason;
            // the next round completed on B with the next model version.
            Assert.Equal(RoundStatus.Completed, records[0].Status);
            Assert.Equal(modelOfA, storeB.LoadModel(1));
            RoundRecord interrupted = Assert.Single(records, r => r.Round == 2);
            Assert.Equal(RoundStatus.Aborted, interrupted.Status);
            Assert.Equal("coordinator takeover: the coordinator of lease epoch 1 stopped while the round was open; this coordinator took over at lease epoch 2", interrupted.AbortReason);
            interruptedReason = interrupted.AbortReason;
            Assert.Equal(rounds, records.Count(r => r.Status == RoundStatus.Completed));
            Assert.True(records.Last(r => r.Status == RoundStatus.Completed).Round > 2);
            Assert.NotNull(storeB.LoadModel(2));
        }

        // The cluster's ledger (read through the slice silo left) lists round 2 too, aborted by B (epoch 2) with the same reason.
        using (IHost client = await MultiProcessClusterTests.StartClientAsync([slices], federation, fed.Provisioned.AggregatorKitDirectory))
        {
            LedgerEntry[] entries = await client.Services.GetRequiredService<IClusterClient>().GetGrain<ILedgerGrain>(federation).EntriesAsync().WaitAsync(TimeSpan.FromSeconds(60));
            foreach (LedgerEntry e in entries)
            {
                _output.WriteLine($"ledger: round {e.Round} completed={e.Completed} epoch={e.Epoch} {e.AbortReason}");
            }

            // Aborted by B at the takeover (epoch 2, the reason B's store gives), or first by round 2's own grain when one of
            // its calls to a slice grain on the killed silo failed (epoch 0, a slice's failure: LedgerEntry.Epoch); the ledger
            // keeps the first outcome recorded (seen in CI under load).
            LedgerEntry round2 = Assert.Single(entries, e => e.Round == 2);
            Assert.False(round2.Completed);
            Assert.True(
                (round2.Epoch == 2 && round2.AbortReason == interruptedReason) || (round2.Epoch == 0 && round2.AbortReason?.Contains("slice", StringComparison.Ordinal) == true),
                $"round 2 in the cluster's ledger: epoch {round2.Epoch}, reason '{round2.AbortReason}'");
            await client.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }

        // The federation privacy ledger continues A's: every line A wrote, then round 3's.
        string[] ledgerOfB = File.ReadAllLines(AggregatorState.PrivacyLedgerPath(dataB));
        Assert.Equal(ledgerOfA, ledgerOfB.Take(ledgerOfA.Length));
        Assert.True(ledgerOfB.Length > ledgerOfA.Length);

        // One audit log for the aggregator: B's starts with A's up to round 1's completion and verifies end to end.
        string auditB = AggregatorState.AuditDirectory(dataB);
        AuditVerification verified = AuditVerifier.Verify(auditB);
        Assert.True(verified.Ok, verified.FirstProblem);
        string[] linesB = File.ReadAllLines(Path.Combine(auditB, AuditLog.LogFileName));
        int completed1 = Array.FindIndex(auditOfA, l => l.Contains("\"round.completed\"", StringComparison.Ordinal));
        Assert.True(completed1 > 0);
        Assert.Equal(auditOfA.Take(completed1 + 1), linesB.Take(completed1 + 1));
        Assert.Contains(linesB, l => l.Contains("took over at lease epoch 2", StringComparison.Ordinal));
        foreach (string directory in fed.AgentAuditDirectories)
        {
            AuditVerification agent = AuditVerifier.Verify(directory);
            Assert.True(agent.Ok, directory + ": " + agent.FirstProblem);
        }

        // Every site saw round 1 complete and a later round complete (on B).
        Assert.Equal(Sites.Length, fed.Reports.Count(r => r.Round == 1 && r.Completed));
        Assert.Equal(Sites.Length, fed.Reports.Count(r => r.Round > 2 && r.Completed));
    }

    [SkippableFact]
    public async Task Rounds_CoordinatorKilled_AgentsKnowingOnlyASliceSiloCompleteNextRoundThroughNewHolder()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string federation = "takeover-forward";
        const int rounds = 2;
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), federation, Sites);
        // A silo that is not coordinator-eligible serves agents (slices and forwarding); A and B are coordinator-eligible.
        using Takeover cluster = await StartAsync(fed, federation, "takeover_forward", rounds, agentListen: "https://127.0.0.1:0");
        (SiloProcess front, SiloProcess a, SiloProcess b, string dataB) = (cluster.Other, cluster.A, cluster.B, cluster.DataB);

        // The agents know the front only. The first masked-input upload after round 1 completed kills A.
        Uri endpoint = ClusterFrontTests.AgentEndpoint(front);
        var calls = new System.Collections.Concurrent.ConcurrentDictionary<(string Authority, string Method), long>();
        int exit = await RunAgentsKillingAAsync(fed, cluster, [endpoint], calls);
        _output.WriteLine("--- silo A ---\n" + a.Output + "\n--- silo B ---\n" + b.Output + "\n--- front ---\n" + front.Output);
        Assert.Equal(0, exit);
        Assert.Contains("coordinator lease acquired (epoch 2)", b.Output, StringComparison.Ordinal);

        // Round 1 completed on A, round 2 was aborted by the takeover, and the next round completed on B, every site in it,
        // with the agents' control calls all made to the front.
        using (AggregatorStore storeB = AggregatorStore.Open(AggregatorState.StorePath(dataB)))
        {
            IReadOnlyList<RoundRecord> records = storeB.ListRounds();
            foreach (RoundRecord r in records)
            {
                _output.WriteLine($"round {r.Round}: {r.Status} {r.AbortReason}");
            }

            Assert.Equal(RoundStatus.Completed, records[0].Status);
            Assert.Equal(RoundStatus.Aborted, Assert.Single(records, r => r.Round == 2).Status);
            Assert.Equal(rounds, records.Count(r => r.Status == RoundStatus.Completed));
            Assert.NotNull(storeB.LoadModel(2));
        }

        Assert.Equal(Sites.Length, fed.Reports.Count(r => r.Round == 1 && r.Completed));
        Assert.Equal(Sites.Length, fed.Reports.Count(r => r.Round > 2 && r.Completed));
        Assert.All(calls.Keys.Where(c => c.Method != "UploadMaskedInput"), c => Assert.Equal(endpoint.Authority, c.Authority));
        // The front reached the new holder for them: B counts the requests other silos forwarded to it. (Whether the front
        // also logs "could not reach the coordinator" depends on timing: only if an agent's call reached it while the lease
        // still named the dead A; under load the lease had moved first and that line was absent, CI of cad6fab.)
        Assert.Matches("requests forwarded by other silos, bytes: [1-9]", b.Output);
        AuditVerification verified = AuditVerifier.Verify(AggregatorState.AuditDirectory(dataB));
        Assert.True(verified.Ok, verified.FirstProblem);
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Rounds_AgentsKnowingOnlyTheStandby_ForwardedByItsFrontThenServedByItAfterTakeover(bool listenPort0)
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        string federation = listenPort0 ? "takeover-standby-port0" : "takeover-standby";
        const int rounds = 2;
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), federation, Sites);
        // With SecureFed:Listen port 0 the standby's front picks the port, and the silo keeps it after the takeover.
        using Takeover cluster = await StartAsync(fed, federation, listenPort0 ? "takeover_standby_port0" : "takeover_standby", rounds, agentListen: null,
            portB: listenPort0 ? 0 : null);
        (SiloProcess a, SiloProcess b) = (cluster.A, cluster.B);
        (string dataA, string dataB) = (cluster.DataA, cluster.DataB);
        int portB = StandbyPort(b);
        if (!listenPort0)
        {
            Assert.Equal(cluster.PortB, portB);
        }

        // The agents know the standby B only: round 1 goes through B's front to A; A is killed before a masked-input upload
        // of round 2; B takes the lease, stops its front and serves the same address as the coordinator.
        var endpoint = new Uri($"https://127.0.0.1:{portB}");
        var calls = new System.Collections.Concurrent.ConcurrentDictionary<(string Authority, string Method), long>();
        int exit = await RunAgentsKillingAAsync(fed, cluster, [endpoint], calls);
        _output.WriteLine("--- silo A ---\n" + a.Output + "\n--- silo B ---\n" + b.Output);
        Assert.Equal(0, exit);
        Assert.Contains("coordinator lease acquired (epoch 2)", b.Output, StringComparison.Ordinal);
        Assert.Contains($"aggregator listening on https://127.0.0.1:{portB}/", b.Output, StringComparison.Ordinal);

        // Round 1 was A's (every site in it, through B's front), round 2 aborted by the takeover, the next round B's.
        using (AggregatorStore storeA = AggregatorStore.Open(AggregatorState.StorePath(dataA)))
        {
            Assert.Equal(RoundStatus.Completed, storeA.GetRound(1)!.Status);
        }

        using (AggregatorStore storeB = AggregatorStore.Open(AggregatorState.StorePath(dataB)))
        {
            IReadOnlyList<RoundRecord> records = storeB.ListRounds();
            Assert.Equal(RoundStatus.Completed, records[0].Status);
            Assert.Equal(RoundStatus.Aborted, Assert.Single(records, r => r.Round == 2).Status);
            Assert.Equal(rounds, records.Count(r => r.Status == RoundStatus.Completed));
        }

        Assert.Equal(Sites.Length, fed.Reports.Count(r => r.Round == 1 && r.Completed));
        Assert.Equal(Sites.Length, fed.Reports.Count(r => r.Round > 2 && r.Completed));
        Assert.All(calls.Keys.Where(c => c.Method != "UploadMaskedInput"), c => Assert.Equal(endpoint.Authority, c.Authority));
        AuditVerification verified = AuditVerifier.Verify(AggregatorState.AuditDirectory(dataB));
        Assert.True(verified.Ok, verified.FirstProblem);
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Takeover_StandbyPortTakenByAnotherProcessAfterItsFrontStopped_FailsNamingTheAddress(bool listenPort0)
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        string federation = listenPort0 ? "takeover-port-taken" : "takeover-fixed-port-taken";
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), federation, Sites);
        using Takeover cluster = await StartAsync(fed, federation, listenPort0 ? "takeover_port_taken" : "takeover_fixed_port_taken", rounds: 2, agentListen: null,
            portB: listenPort0 ? 0 : null);
        int portB = StandbyPort(cluster.B);

        // Another process binds the port B's front picked as soon as the front stops (B took the lease after A was killed).
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        Task<System.Net.Sockets.TcpListener> grab = Task.Run(() => Grab(portB, cts.Token));
        cluster.A.Kill();
        System.Net.Sockets.TcpListener taken = await grab;
        try
        {
            int exit = await cluster.B.WaitForExitAsync(TimeSpan.FromSeconds(120));
            _output.WriteLine(cluster.B.Output);

            // No silent move to another port: B stops with an error naming the address it announced.
            Assert.NotEqual(0, exit);
            Assert.Contains("coordinator lease acquired (epoch 2)", cluster.B.Output, StringComparison.Ordinal);
            string origin = listenPort0 ? "the address this silo's standby front picked" : "this silo's SecureFed:Listen, which its standby front served";
            Assert.Contains($"the aggregator service cannot bind https://127.0.0.1:{portB}, {origin}", cluster.B.Output, StringComparison.Ordinal);
            Assert.Contains("The lease is released for another coordinator-eligible silo", cluster.B.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("aggregator listening on", cluster.B.Output, StringComparison.Ordinal);
        }
        finally
        {
            taken.Stop();
        }
    }

    [SkippableFact]
    public async Task Standby_ListenAddressInUse_FailsAtStartUpNamingTheAddressAndTheKey()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string federation = "takeover-listen-taken";
        string connection = await CreateDatabaseAsync("takeover_listen_taken");
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), federation, ["site-a"], "127.0.0.1"));

        // Another process holds the address the coordinator-eligible silo's standby front is to serve on.
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        int port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        string config = Path.Combine(_dir, "standby-listen-taken.json");
        await File.WriteAllTextAsync(config, System.Text.Json.JsonSerializer.Serialize(new
        {
            SecureFed = new
            {
                Federation = federation,
                Listen = $"https://127.0.0.1:{port}",
                KitDirectory = provisioned.AggregatorKitDirectory,
                DataDirectory = Path.Combine(_dir, "standby-listen-taken-data"),
                Cluster = new
                {
                    ConnectionString = connection, Coordinator = true, Tls = "off", AdvertisedAddress = "127.0.0.1",
                    SiloPort = SiloProcess.FreePort(), GatewayPort = SiloProcess.FreePort(),
                },
            },
        }));

        (int exit, string stdout, string stderr) = await SiloProcess.RunCliAsync(TimeSpan.FromMinutes(2), "aggregator", "--config", config);
        _output.WriteLine(stdout + "\n" + stderr);

        Assert.Equal(1, exit);
        Assert.Contains($"error: this silo cannot serve agents on https://127.0.0.1:{port} (SecureFed:Listen): the address is already in use by another process. Stop that process, or set SecureFed:Listen to a free address.",
            stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("waiting for the coordinator lease", stdout, StringComparison.Ordinal);
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
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The port standby <paramref name="silo"/> printed for its front (its Listen port, or the one picked for port 0).</summary>
    private static int StandbyPort(SiloProcess silo)
    {
        System.Text.RegularExpressions.Match standby = System.Text.RegularExpressions.Regex.Match(silo.Output,
            @"standby: slice uploads served and agents' other calls forwarded to the coordinator on https://127\.0\.0\.1:(\d+)/");
        Assert.True(standby.Success, "the standby printed no front endpoint:\n" + silo.Output);
        int port = int.Parse(standby.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(port > 0);
        return port;
    }

    /// <summary>Binds 127.0.0.1:<paramref name="port"/> as soon as it is free (tried every millisecond); the listener is started.</summary>
    private static System.Net.Sockets.TcpListener Grab(int port, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
            try
            {
                listener.Start();
                return listener;
            }
            catch (System.Net.Sockets.SocketException)
            {
                listener.Dispose();
                Thread.Sleep(1);
            }
        }
    }

    /// <summary>
    /// Runs the agents given <paramref name="endpoints"/> (the first one first; each call counted in <paramref name="calls"/>
    /// when given) until they finish; the first masked-input upload after round 1 completed kills coordinator A. Returns
    /// standby B's exit code.
    /// </summary>
    private async Task<int> RunAgentsKillingAAsync(FrontFederation fed, Takeover cluster, Uri[] endpoints,
        System.Collections.Concurrent.ConcurrentDictionary<(string Authority, string Method), long>? calls)
    {
        var latch = new UploadHook.StrongBox(); // its own latch: ClusterFrontTests may run in parallel
        fed.StartAgents(endpoints[0], "agents",
            handler => new UploadHook(calls is null ? handler : new CallCounter(handler, calls), () => fed.Reports.Any(r => r.Round == 1 && r.Completed), () =>
            {
                _output.WriteLine("killing the coordinator silo A before a masked-input upload of round 2");
                cluster.A.Kill();
            }, latch),
            _ => new AgentSetup(endpoints, AgentRunner.SliceUploadVersion));
        await fed.AgentsFinishedAsync(RunTimeout);
        return await cluster.B.WaitForExitAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>
    /// Three silo processes on a database of their own, every one with the aggregator's kit (the cluster's ports run the
    /// default mutual TLS with its certificate): a silo that is not coordinator-eligible (serving agents on
    /// <paramref name="agentListen"/> when given, slices only otherwise), coordinator A holding the lease at epoch 1, and
    /// standby B waiting for it (on <paramref name="portB"/> when given, 0 letting its front pick one; a free port otherwise).
    /// </summary>
    private async Task<Takeover> StartAsync(FrontFederation fed, string federation, string database, int rounds, string? agentListen, int? portB = null)
    {
        string connection = await CreateDatabaseAsync(database);
        var cluster = new Takeover(Path.Combine(_dir, "aggregator-a"), Path.Combine(_dir, "aggregator-b"), SiloProcess.FreePort(), portB ?? SiloProcess.FreePort());
        string silos = Path.Combine(_dir, "silos");
        Directory.CreateDirectory(silos);
        try
        {
            cluster.Other = await SiloProcess.StartAsync(silos, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connection, null,
                agentListen, fed.Provisioned.AggregatorKitDirectory, ShortLease, null);
            cluster.A = await SiloProcess.StartAsync(silos, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connection,
                fed.AggregatorSettings(cluster.DataA, cluster.PortA, rounds), null, null, ShortLease, null);
            Assert.Contains("coordinator lease acquired (epoch 1)", cluster.A.Output, StringComparison.Ordinal);
            cluster.B = await SiloProcess.StartAsync(silos, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connection,
                fed.AggregatorSettings(cluster.DataB, cluster.PortB, rounds), null, null, ShortLease, readyLine: "waiting for the coordinator lease");
            return cluster;
        }
        catch
        {
            cluster.Dispose();
            throw;
        }
    }

    private async Task<string> CreateDatabaseAsync(string name)
    {
        await using NpgsqlDataSource server = NpgsqlDataSource.Create(_postgres.ConnectionString);
        await using (NpgsqlCommand create = server.CreateCommand($"CREATE DATABASE {name}"))
        {
            await create.ExecuteNonQueryAsync().WaitAsync(RoundScript.Timeout);
        }

        return new NpgsqlConnectionStringBuilder(_postgres.ConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>The three silo processes of a takeover test and the coordinator-eligible silos' data folders and ports.</summary>
    private sealed class Takeover(string dataA, string dataB, int portA, int portB) : IDisposable
    {
        public string DataA { get; } = dataA;

        public string DataB { get; } = dataB;

        public int PortA { get; } = portA;

        public int PortB { get; } = portB;

        public SiloProcess Other { get; set; } = null!;

        public SiloProcess A { get; set; } = null!;

        public SiloProcess B { get; set; } = null!;

        public void Dispose()
        {
            B?.Dispose();
            A?.Dispose();
            Other?.Dispose();
        }
    }
}
