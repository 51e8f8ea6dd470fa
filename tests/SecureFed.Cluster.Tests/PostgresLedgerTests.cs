using Orleans.TestingHost;
using SecureFed.Cluster.Grains;

namespace SecureFed.Cluster.Tests;

/// <summary>The ledger grain on the PostgreSQL grain storage, across a whole-cluster restart.</summary>
public sealed class PostgresLedgerTests : IClassFixture<PostgresServer>
{
    private static string s_connectionString = "";
    private readonly PostgresServer _postgres;

    public PostgresLedgerTests(PostgresServer postgres)
    {
        _postgres = postgres;
    }

    [SkippableFact]
    public async Task Ledger_ClusterRestarted_EntriesSurviveInPostgresAndConflictsAreRefused()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        s_connectionString = _postgres.ConnectionString;
        var completed = new LedgerEntry(1, "s1", Completed: true, new string('a', 64), ["site-001", "site-002"], null, DateTimeOffset.UnixEpoch);
        var aborted = new LedgerEntry(2, "s2", Completed: false, null, [], "a silo failed", DateTimeOffset.UnixEpoch);

        TestCluster first = await StartAsync();
        try
        {
            ILedgerGrain ledger = first.GrainFactory.GetGrain<ILedgerGrain>("pg-federation");
            Assert.True(await ledger.RecordAsync(completed).WaitAsync(RoundScript.Timeout));
            Assert.True(await ledger.RecordAsync(aborted).WaitAsync(RoundScript.Timeout));
            Assert.False(await ledger.RecordAsync(completed).WaitAsync(RoundScript.Timeout)); // an identical retry
        }
        finally
        {
            await StopAsync(first);
        }

        TestCluster second = await StartAsync();
        try
        {
            ILedgerGrain ledger = second.GrainFactory.GetGrain<ILedgerGrain>("pg-federation");
            LedgerEntry[] entries = await ledger.EntriesAsync().WaitAsync(RoundScript.Timeout);
            Assert.Equal([1L, 2L], entries.Select(e => e.Round));
            Assert.Equal(completed.SumSha256, entries[0].SumSha256);
            Assert.Equal(["site-001", "site-002"], entries[0].Contributors);
            Assert.Equal("a silo failed", entries[1].AbortReason);

            var ex = await Assert.ThrowsAsync<ClusterProtocolException>(() =>
                ledger.RecordAsync(completed with { Completed = false, SumSha256 = null }).WaitAsync(RoundScript.Timeout));
            Assert.Contains("already recorded as completed", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            await StopAsync(second);
        }
    }

    private static async Task<TestCluster> StartAsync()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<PostgresSilo>();
        TestCluster cluster = builder.Build();
        await cluster.DeployAsync().WaitAsync(TimeSpan.FromSeconds(120));
        return cluster;
    }

    private static async Task StopAsync(TestCluster cluster)
    {
        await cluster.StopAllSilosAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await cluster.DisposeAsync();
    }

    private sealed class PostgresSilo : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder) => siloBuilder.AddSecureFedCluster().AddSecureFedPostgresStorage(s_connectionString);
    }
}
