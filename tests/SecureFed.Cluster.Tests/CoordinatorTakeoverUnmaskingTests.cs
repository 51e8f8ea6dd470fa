using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Agent;
using SecureFed.Audit;
using SecureFed.Cluster.Lease;

using static SecureFed.Cluster.Tests.CoordinatorStateTesting;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A coordinator lost while its round is in the unmasking stage, on the cluster's lease and saved state (a throw-away
/// PostgreSQL, the real round coordinator and mTLS agents in one process). Each site that answers the unmasking request
/// charges its site-level ledger for the round first; the coordinator that takes over must charge the federation's
/// ledger for it too, or the audit fails on charges nothing covers. It can only if the round store it restores holds
/// the round's consistency stage: before, the store was saved at the round's opening only, the stages never.
/// </summary>
public sealed class CoordinatorTakeoverUnmaskingTests : IClassFixture<PostgresServer>, IDisposable
{
    private const string Federation = "unmasking-takeover";
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private readonly PostgresServer _postgres;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-unmasking-takeover-").FullName;

    public CoordinatorTakeoverUnmaskingTests(PostgresServer postgres)
    {
        _postgres = postgres;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }

    [SkippableFact]
    public async Task Round_CoordinatorLostAfterTheUnmaskingRequest_SuccessorChargesTheRoundAsTheSitesDidAndTheAuditPasses()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), Federation, Sites);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Federation);
        string dataA = Path.Combine(_dir, "silo-a-data");
        string dataB = Path.Combine(_dir, "silo-b-data");

        // Coordinator A (epoch 1) runs round 1 until every site has the unmasking request: each charges its ledger, then its
        // Unmask call is held, so the round sits in its unmasking stage (stage timeout 120 s).
        ClusterCoordinatorFence fenceA = await FenceAsync(db, lease, "silo-a", dataA);
        WebApplication appA = Build(fed, dataA, fenceA);
        WebApplication? appB = null;
        ClusterCoordinatorFence? fenceB = null;
        try
        {
            await appA.StartAsync().WaitAsync(Timeout);
            var held = new HeldUnmaskCalls();
            fed.StartAgents(AggregatorHost.BoundAddress(appA), "agents", wrap: inner => new HoldUnmask(inner, held));
            await held.AllArrived(Sites.Length).WaitAsync(Timeout);

            // A dies there: its lease runs out in the database. Coordinator B takes over (epoch 2) from what A saved.
            await ExpireAsync(db, Federation);
            fenceB = await FenceAsync(db, lease, "silo-b", dataB);
            Assert.Equal(2, fenceB.Epoch);
            appB = Build(fed, dataB, fenceB);
            AggregatorState stateB = appB.Services.GetRequiredService<AggregatorState>();
            await appB.StartAsync().WaitAsync(Timeout);
            using (var wait = new CancellationTokenSource(Timeout))
            {
                while (stateB.Store.GetRound(1)?.Status != RoundStatus.Aborted)
                {
                    await Task.Delay(50, wait.Token);
                }
            }

            await fed.StopAgentsAsync();
            await appB.StopAsync().WaitAsync(Timeout);
        }
        finally
        {
            await fed.StopAgentsAsync();
            await appA.StopAsync().WaitAsync(Timeout);
            await appA.DisposeAsync();
            if (appB is not null)
            {
                await appB.DisposeAsync();
            }

            await fenceA.DisposeAsync();
            if (fenceB is not null)
            {
                await fenceB.DisposeAsync();
            }
        }

        // Every site charged round 1 for the survivors its signed request named; B charged the same ρ, with the reason.
        Privacy.LedgerEntry[] siteCharges = [.. Sites.Select(site => Assert.Single(SiteCharges(Path.Combine(fed.Directory, "agents", site, AgentState.LedgerFileName))))];
        Privacy.LedgerEntry charge = Assert.Single(SiteCharges(AggregatorState.PrivacyLedgerPath(dataB)));
        Assert.Equal(1, charge.Round);
        foreach (Privacy.LedgerEntry site in siteCharges)
        {
            Assert.Equal(1, site.Round);
            Assert.Equal(((Privacy.ZcdpMechanism)site.Mechanism).Rho, ((Privacy.ZcdpMechanism)charge.Mechanism).Rho, 12);
            Assert.Equal(site.EpsilonAfter, charge.EpsilonAfter, 9);
        }

        string[] lines = File.ReadAllLines(Path.Combine(AggregatorState.AuditDirectory(dataB), AuditLog.LogFileName));
        Assert.Single(lines, l => l.Contains($"\"type\":\"{AuditEvents.UnmaskRequested}\"", StringComparison.Ordinal)); // A's, saved before the request went out
        string spent = Assert.Single(lines, l => l.Contains($"\"type\":\"{AuditEvents.PrivacySpent}\"", StringComparison.Ordinal));
        Assert.Contains("interrupted during unmasking", spent, StringComparison.Ordinal);

        // The auditor finds the federation's charge covering the sites' and every log verifies.
        AuditReportResult report = AuditReport.Create([AggregatorState.AuditDirectory(dataB), .. fed.AgentAuditDirectories]);
        Assert.True(report.Passed, report.Verdict + "\n" + string.Join("\n", report.Problems));

        static IEnumerable<Privacy.LedgerEntry> SiteCharges(string path) =>
            Privacy.PrivacyLedger.OpenReadOnly(path).Entries.Where(e => e.Guarantee == Privacy.Guarantee.Site);
    }

    /// <summary>The real aggregator host on <paramref name="data"/> under <paramref name="fence"/>, one round wanted, a long unmasking stage.</summary>
    private static WebApplication Build(FrontFederation fed, string data, ICoordinatorFence fence)
    {
        Dictionary<string, string?> all = FrontFederation.Flatten(fed.AggregatorSettings(data, 0, rounds: 1));
        all["SecureFed:Federation"] = fed.Federation;
        all["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        all["SecureFed:StageTimeoutSeconds"] = "120";
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(all).Build();
        return AggregatorHost.Build(configuration, (Func<float[]>?)null, roundServers: null, fence, logging => logging.SetMinimumLevel(LogLevel.Warning));
    }

    /// <summary>Counts the agents whose Unmask call arrived (each agent charged its ledger just before it).</summary>
    private sealed class HeldUnmaskCalls
    {
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _arrived;
        private int _expected = int.MaxValue;

        public Task AllArrived(int count)
        {
            Volatile.Write(ref _expected, count);
            if (Volatile.Read(ref _arrived) >= count)
            {
                _all.TrySetResult();
            }

            return _all.Task;
        }

        public void Arrived()
        {
            if (Interlocked.Increment(ref _arrived) >= Volatile.Read(ref _expected))
            {
                _all.TrySetResult();
            }
        }
    }

    /// <summary>Holds every Unmask call of one agent until the agent stops; counts the agent once.</summary>
    private sealed class HoldUnmask(HttpMessageHandler inner, HeldUnmaskCalls held) : DelegatingHandler(inner)
    {
        private int _counted;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri?.AbsolutePath.EndsWith("/Unmask", StringComparison.Ordinal) == true)
            {
                if (Interlocked.Exchange(ref _counted, 1) == 0)
                {
                    held.Arrived();
                }

                await Task.Delay(System.Threading.Timeout.Infinite, cancellationToken).ConfigureAwait(false);
            }

            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
    }
}
