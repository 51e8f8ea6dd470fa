using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Orleans.Configuration;
using SecureFed.Cluster.Grains;
using SecureFed.Cluster.Membership;
using SecureFed.Protocol;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// Membership in PostgreSQL (Orleans' ADO.NET clustering, schema created by the silos): the first silo's death does not
/// stop a new silo joining, silos may start together on an empty database, and the schema is created exactly once.
/// Each test uses a database of its own on one throw-away server.
/// </summary>
public sealed class PostgresMembershipTests : IClassFixture<PostgresServer>
{
    private const int Active = 3; // Orleans SiloStatus.Active, as stored in OrleansMembershipTable.Status
    private static readonly TimeSpan MembershipTimeout = TimeSpan.FromSeconds(120);
    private readonly PostgresServer _postgres;
    private readonly ITestOutputHelper _output;

    public PostgresMembershipTests(PostgresServer postgres, ITestOutputHelper output)
    {
        _postgres = postgres;
        _output = output;
    }

    [SkippableFact]
    public async Task EnsureSchema_FourSessionsAtOnceOnEmptyDatabase_CreatedOnceWithEveryQuery()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        string connectionString = await CreateDatabaseAsync("schema_race");
        await using NpgsqlDataSource dataSource = NpgsqlDataSource.Create(connectionString);

        bool[] created = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
            PostgresClusteringSchema.EnsureAsync(dataSource, CancellationToken.None)))).WaitAsync(RoundScript.Timeout);

        Assert.Equal(1, created.Count(c => c));
        Assert.False(await PostgresClusteringSchema.EnsureAsync(dataSource, CancellationToken.None).WaitAsync(RoundScript.Timeout));
        await using NpgsqlCommand keys = dataSource.CreateCommand("SELECT querykey FROM orleansquery ORDER BY querykey");
        var stored = new List<string>();
        await using (NpgsqlDataReader reader = await keys.ExecuteReaderAsync().WaitAsync(RoundScript.Timeout))
        {
            while (await reader.ReadAsync())
            {
                stored.Add(reader.GetString(0));
            }
        }

        Assert.Equal(PostgresClusteringSchema.RequiredQueryKeys.Order(StringComparer.Ordinal), stored);
    }

    [SkippableFact]
    public async Task EnsureSchema_QueryTableWithoutClusteringQueries_RefusedNamingThemAndNothingChanged()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        string connectionString = await CreateDatabaseAsync("schema_partial");
        await using NpgsqlDataSource dataSource = NpgsqlDataSource.Create(connectionString);
        // Orleans' main script and a membership table of some other origin, but none of the clustering queries.
        await using (NpgsqlCommand setup = dataSource.CreateCommand(PostgresClusteringSchema.Script("PostgreSQL-Main.sql") + ";CREATE TABLE OrleansMembershipTable (x int);"))
        {
            await setup.ExecuteNonQueryAsync().WaitAsync(RoundScript.Timeout);
        }

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            PostgresClusteringSchema.EnsureAsync(dataSource, CancellationToken.None).WaitAsync(RoundScript.Timeout));

        Assert.Contains("without the clustering queries", ex.Message, StringComparison.Ordinal);
        Assert.Contains("CleanupDefunctSiloEntriesKey", ex.Message, StringComparison.Ordinal);
        Assert.Contains("InsertMembershipKey", ex.Message, StringComparison.Ordinal);
        await using NpgsqlCommand count = dataSource.CreateCommand("SELECT count(*) FROM orleansquery");
        Assert.Equal(0L, await count.ExecuteScalarAsync().WaitAsync(RoundScript.Timeout));
    }

    [SkippableFact]
    public async Task Silos_FirstStartedSiloKilled_ThirdSiloJoinsAndRunsARound()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string federation = "membership-failover";
        string connectionString = await CreateDatabaseAsync("failover");
        string dir = Directory.CreateTempSubdirectory("securefed-membership-").FullName;
        var silos = new List<SiloProcess>();
        try
        {
            SiloProcess a = await SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString);
            silos.Add(a);
            SiloProcess b = await SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString);
            silos.Add(b);
            await WaitForMembershipAsync(connectionString, federation, active: [a.SiloPort, b.SiloPort]);
            var before = new LedgerEntry(1, "s1", Completed: false, null, [], "recorded before the first silo died", DateTimeOffset.UnixEpoch);
            using (IHost client = await StartClientAsync(federation, [a, b]))
            {
                ILedgerGrain ledger = client.Services.GetRequiredService<IClusterClient>().GetGrain<ILedgerGrain>(federation);
                Assert.True(await ledger.RecordAsync(before).WaitAsync(RoundScript.Timeout));
                await client.StopAsync().WaitAsync(RoundScript.Timeout);
            }

            // The first silo dies without a word (under primary-silo clustering it kept membership: nothing could join).
            a.Kill();
            var joining = System.Diagnostics.Stopwatch.StartNew();
            SiloProcess c = await SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString);
            silos.Add(c);
            _output.WriteLine($"silo C started {joining.Elapsed.TotalSeconds:F1} s after silo A was killed");
            await WaitForMembershipAsync(connectionString, federation, active: [b.SiloPort, c.SiloPort]);
            _output.WriteLine($"membership lists B and C active, A not, {joining.Elapsed.TotalSeconds:F1} s after the kill");

            // Through C's gateway only: the ledger (PostgreSQL) still has round 1, and a round runs on B and C.
            using IHost onlyC = await StartClientAsync(federation, [c]);
            IClusterClient grains = onlyC.Services.GetRequiredService<IClusterClient>();
            LedgerEntry[] entries = await grains.GetGrain<ILedgerGrain>(federation).EntriesAsync().WaitAsync(RoundScript.Timeout);
            Assert.Equal(before.AbortReason, Assert.Single(entries).AbortReason);
            using var script = new RoundScript(6, seed: 41, round: 2, 2_500, bitWidth: 32, degree: 5, federation: federation);
            var round = new ClusterRoundClient(grains, federation, 2);
            var spec = ClusterRoundSpec.From(script.Parameters, 1_024);
            await round.OpenAsync(spec, CancellationToken.None).WaitAsync(RoundScript.Timeout);
            await script.ThroughShareKeysAsync(round, []);
            await script.SendMaskedInputsAsync(round, Enumerable.Range(1, 6));
            (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(round, []);
            Assert.Equal(single.Sum, clustered.Sum);
            Assert.Equal(script.ExpectedSum(Enumerable.Range(1, 6)), clustered.Sum);
            var hosts = new HashSet<string>(StringComparer.Ordinal);
            for (int k = 0; k < 3; k++)
            {
                hosts.Add(await grains.GetGrain<ISliceGrain>(ClusterKeys.Slice(round.RoundKey, k)).SiloAsync().WaitAsync(RoundScript.Timeout));
            }

            Assert.Contains(hosts, h => h.Contains($":{c.SiloPort}@", StringComparison.Ordinal));
            Assert.DoesNotContain(hosts, h => h.Contains($":{a.SiloPort}@", StringComparison.Ordinal));
            Assert.True(await round.RecordAsync(spec.SessionId, clustered, spec.Participants, null, CancellationToken.None).WaitAsync(RoundScript.Timeout));
            Assert.Equal([1L, 2L], (await grains.GetGrain<ILedgerGrain>(federation).EntriesAsync().WaitAsync(RoundScript.Timeout)).Select(e => e.Round));
            await onlyC.StopAsync().WaitAsync(RoundScript.Timeout);
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

    [SkippableFact]
    public async Task Silos_FailureDetectionSettings_AcceptedByRealSilosAndAKilledSiloDeclaredDead()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string federation = "membership-settings";
        string connectionString = await CreateDatabaseAsync("detection");
        string dir = Directory.CreateTempSubdirectory("securefed-membership-").FullName;
        // Faster detection than Orleans' defaults: real silo processes must accept the settings (Orleans validates them at start)
        // and still declare a killed silo dead (23 s here against 39 s with the defaults, one run each; not asserted).
        var detection = new Dictionary<string, object>
        {
            ["ProbeTimeoutSeconds"] = 2,
            ["MissedProbesLimit"] = 2,
            ["ProbedSilos"] = 2,
            ["VotesForDeathDeclaration"] = 1,
            ["TableRefreshSeconds"] = 2,
            ["DefunctSiloExpirationHours"] = 24,
        };
        var silos = new List<SiloProcess>();
        try
        {
            SiloProcess a = await SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString, null, null, null, detection, null);
            silos.Add(a);
            SiloProcess b = await SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString, null, null, null, detection, null);
            silos.Add(b);
            await WaitForMembershipAsync(connectionString, federation, active: [a.SiloPort, b.SiloPort]);

            b.Kill();

            await WaitForMembershipAsync(connectionString, federation, active: [a.SiloPort]);
            Assert.DoesNotContain("ClusterMembershipOptions", a.Output, StringComparison.Ordinal); // no options error logged
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

    [SkippableFact]
    public async Task Silos_TwoStartingTogetherOnEmptyDatabase_BothJoinOneCluster()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string federation = "membership-race";
        string connectionString = await CreateDatabaseAsync("start_race");
        string dir = Directory.CreateTempSubdirectory("securefed-membership-").FullName;
        Task<SiloProcess>[] starting =
        [
            SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString),
            SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString),
        ];
        try
        {
            SiloProcess[] silos = await Task.WhenAll(starting).WaitAsync(TimeSpan.FromSeconds(180));

            await WaitForMembershipAsync(connectionString, federation, active: [.. silos.Select(s => s.SiloPort)]);
            using IHost client = await StartClientAsync(federation, silos);
            IManagementGrain management = client.Services.GetRequiredService<IClusterClient>().GetGrain<IManagementGrain>(0);
            Dictionary<SiloAddress, SiloStatus> hosts = await management.GetHosts(onlyActive: true).WaitAsync(RoundScript.Timeout);
            Assert.Equal(silos.Select(s => s.SiloPort).Order(), hosts.Keys.Select(h => h.Endpoint.Port).Order());
            await client.StopAsync().WaitAsync(RoundScript.Timeout);
        }
        finally
        {
            foreach (Task<SiloProcess> silo in starting.Where(t => t.IsCompletedSuccessfully))
            {
                silo.Result.Dispose();
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Creates an empty database on the fixture's server; returns its connection string.</summary>
    private async Task<string> CreateDatabaseAsync(string name)
    {
        await using NpgsqlDataSource server = NpgsqlDataSource.Create(_postgres.ConnectionString);
        await using (NpgsqlCommand create = server.CreateCommand($"CREATE DATABASE {name}"))
        {
            await create.ExecuteNonQueryAsync().WaitAsync(RoundScript.Timeout);
        }

        return new NpgsqlConnectionStringBuilder(_postgres.ConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>Polls the membership table until exactly <paramref name="active"/> (silo ports) are Active.</summary>
    private static async Task WaitForMembershipAsync(string connectionString, string federation, IReadOnlyCollection<int> active)
    {
        await using NpgsqlDataSource dataSource = NpgsqlDataSource.Create(connectionString);
        DateTime deadline = DateTime.UtcNow + MembershipTimeout;
        string seen = "";
        while (true)
        {
            await using NpgsqlCommand command = dataSource.CreateCommand("SELECT port, status FROM orleansmembershiptable WHERE deploymentid = $1 ORDER BY port, generation");
            command.Parameters.Add(new NpgsqlParameter { Value = federation });
            var rows = new List<(int Port, int Status)>();
            await using (NpgsqlDataReader reader = await command.ExecuteReaderAsync().WaitAsync(RoundScript.Timeout))
            {
                while (await reader.ReadAsync())
                {
                    rows.Add((reader.GetInt32(0), reader.GetInt32(1)));
                }
            }

            seen = string.Join(", ", rows.Select(r => $"{r.Port}:{r.Status}"));
            if (rows.Where(r => r.Status == Active).Select(r => r.Port).Order().SequenceEqual(active.Order()))
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, $"membership did not list exactly silos {string.Join(", ", active)} as active within {MembershipTimeout.TotalSeconds} s; table (port:status): {seen}");
            await Task.Delay(250);
        }
    }

    private static async Task<IHost> StartClientAsync(string federation, IReadOnlyList<SiloProcess> silos)
    {
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
        });
        IHost host = builder.Build();
        await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return host;
    }
}
