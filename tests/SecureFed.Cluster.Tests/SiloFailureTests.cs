using Orleans.TestingHost;
using SecureFed.Cluster.Grains;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>A silo killed in the middle of the masked-input stage (its own cluster: the kill changes membership).</summary>
public sealed class SiloFailureTests : IClassFixture<KillableThreeSiloCluster>
{
    private readonly ThreeSiloCluster _cluster;

    public SiloFailureTests(KillableThreeSiloCluster cluster)
    {
        _cluster = cluster;
    }

    [Fact]
    public async Task Round_SiloKilledDuringMaskedInput_AbortsWithReasonAndNextRoundCompletes()
    {
        const int M = 3_001;
        const int N = 8;
        using var first = new RoundScript(N, seed: 21, round: 21, M, bitWidth: 32, degree: N - 1);
        var cluster = new ClusterRoundClient(_cluster.Grains, first.Parameters.FederationId, 21);
        await cluster.OpenAsync(ClusterRoundSpec.From(first.Parameters, 1_001), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await first.ThroughShareKeysAsync(cluster, []);
        await first.SendMaskedInputsAsync(cluster, [1, 2, 3]);

        // Kill (no graceful shutdown) a silo that hosts a slice of this round, other than the primary (it holds the
        // in-memory membership of the test cluster).
        var hosts = new List<string>();
        for (int k = 0; k < 3; k++)
        {
            hosts.Add(await _cluster.Grains.GetGrain<ISliceGrain>(ClusterKeys.Slice(cluster.RoundKey, k)).SiloAsync().WaitAsync(RoundScript.Timeout));
        }

        SiloHandle victim = _cluster.Cluster.Silos.First(s => s != _cluster.Cluster.Primary && hosts.Contains(s.SiloAddress.ToParsableString()));
        await _cluster.Cluster.KillSiloAsync(victim).WaitAsync(RoundScript.Timeout);

        string? reason = null;
        try
        {
            await first.SendMaskedInputsAsync(cluster, [4, 5, 6, 7, 8]);
            await cluster.Round.CloseMaskedInputAsync().WaitAsync(RoundScript.Timeout);
        }
        catch (Exception ex) when (ex is ClusterRoundAbortedException or ClusterProtocolException or SiloUnavailableException or TimeoutException or OrleansMessageRejectionException)
        {
            reason = ex.Message;
        }

        Assert.NotNull(reason); // the round cannot complete: a slice lost the inputs of sites 1..3
        await cluster.RecordAsync(first.Parameters.SessionId, null, first.Parameters.Participants, reason, CancellationToken.None);

        // The next round runs on the two silos left and equals the single-process result bit for bit.
        using var second = new RoundScript(N, seed: 22, round: 22, M, bitWidth: 32, degree: N - 1);
        var next = new ClusterRoundClient(_cluster.Grains, second.Parameters.FederationId, 22);
        await next.OpenAsync(ClusterRoundSpec.From(second.Parameters, 1_001), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await second.ThroughShareKeysAsync(next, [1]);
        await second.SendMaskedInputsAsync(next, Enumerable.Range(2, N - 1));
        (AggregationResult single, AggregationResult clustered) = await second.FinishAsync(next, []);

        Assert.Equal(single.Sum, clustered.Sum);
        Assert.Equal(second.ExpectedSum(Enumerable.Range(2, N - 1)), clustered.Sum);
        Assert.True(await next.RecordAsync(second.Parameters.SessionId, clustered, second.Parameters.Participants, null, CancellationToken.None));
        LedgerEntry[] ledger = await next.Ledger.EntriesAsync().WaitAsync(RoundScript.Timeout);
        Assert.False(Assert.Single(ledger, e => e.Round == 21).Completed);
        Assert.True(Assert.Single(ledger, e => e.Round == 22).Completed);
    }
}
