using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using SecureFed.Cluster.Grains;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A round grain whose round ended (completed or aborted) releases its <see cref="ServerRound"/> at once (the keys and
/// the n(n−1) encrypted shares), answers late calls with the outcome, and is deactivated after
/// <see cref="RoundGrainOptions.KeptAfterEnd"/> whatever calls it gets. Before, it kept the whole round for as
/// long as anything called it. One in-process silo per test. The tests of the late calls keep the ended grain
/// <see cref="Kept"/> (their calls after the end must reach it, however long a loaded machine starves the test); the tests
/// of the deactivation keep it <see cref="Brief"/> and make no call that needs it after the end.
/// </summary>
public sealed class RoundGrainReleaseTests : IAsyncLifetime
{
    private const string Federation = "round-release";
    private const string KeptAfterEndKey = "RoundGrainReleaseTests:KeptAfterEndSeconds";
    private static readonly TimeSpan Kept = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan Brief = TimeSpan.FromSeconds(1);
    private TestCluster _cluster = null!;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.StopAllSilosAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await _cluster.DisposeAsync();
        }
    }

    [Fact]
    public async Task RoundGrain_RoundCompleted_StateReleasedLateCallsRefused()
    {
        await StartAsync(Kept);
        using var script = new RoundScript(4, seed: 41, round: 41, 300, bitWidth: 20, degree: 3, Federation);
        var cluster = new ClusterRoundClient(_cluster.GrainFactory, Federation, 41);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);
        await script.SendMaskedInputsAsync(cluster, [1, 2, 3, 4]);
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(cluster, []);
        Assert.Equal(single.Sum, clustered.Sum);

        // Late calls get the outcome: the stage, and a refusal naming the release.
        ClusterRoundProgress progress = await cluster.Round.ProgressAsync().WaitAsync(RoundScript.Timeout);
        Assert.Equal(nameof(ProtocolStage.Completed), progress.Stage);
        var late = await Assert.ThrowsAsync<ClusterProtocolException>(() => cluster.Round.CloseAdvertiseKeysAsync().WaitAsync(RoundScript.Timeout));
        Assert.Equal($"round {Federation}/41 is over (completed); its state was released and late messages are refused as out of order", late.Message);
        SliceAdmission admission = await cluster.Round.AdmitSliceAsync(41, script.Parameters.SessionId, "site-001", 0).WaitAsync(RoundScript.Timeout);
        Assert.Equal(SliceRefusalKind.WrongStage, admission.Refusal);
    }

    [Fact]
    public async Task RoundGrain_RoundCompleted_DeactivatedOnceKeptAfterEndPassed()
    {
        await StartAsync(Brief);
        using var script = new RoundScript(4, seed: 41, round: 41, 300, bitWidth: 20, degree: 3, Federation);
        var cluster = new ClusterRoundClient(_cluster.GrainFactory, Federation, 41);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);
        await script.SendMaskedInputsAsync(cluster, [1, 2, 3, 4]);
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(cluster, []); // no call to the round grain after its end
        Assert.Equal(single.Sum, clustered.Sum);

        await AssertDeactivatedAsync(cluster.Round);
    }

    [Fact]
    public async Task RoundGrain_RoundAborted_StateReleasedLateCallsRefusedWithTheReason()
    {
        await StartAsync(Kept);
        using var script = new RoundScript(4, seed: 42, round: 42, 300, bitWidth: 20, degree: 3, Federation);
        var cluster = new ClusterRoundClient(_cluster.GrainFactory, Federation, 42);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);

        await cluster.Round.AbortAsync("the coordinator stopped (test)").WaitAsync(RoundScript.Timeout);

        ClusterRoundStatus status = await cluster.Round.StatusAsync().WaitAsync(RoundScript.Timeout);
        Assert.Equal((nameof(ProtocolStage.Aborted), "the coordinator stopped (test)"), (status.Stage, status.AbortReason));
        var late = await Assert.ThrowsAsync<ClusterProtocolException>(() => cluster.Round.CloseMaskedInputAsync().WaitAsync(RoundScript.Timeout));
        Assert.Equal($"round {Federation}/42 was aborted (the coordinator stopped (test)); its state was released and late messages are refused as out of order", late.Message);
        LedgerEntry entry = Assert.Single(await cluster.Ledger.EntriesAsync().WaitAsync(RoundScript.Timeout), e => e.Round == 42);
        Assert.Equal((false, "the coordinator stopped (test)"), (entry.Completed, entry.AbortReason));
    }

    [Fact]
    public async Task RoundGrain_RoundAborted_DeactivatedOnceKeptAfterEndPassedWhateverCallsItGets()
    {
        await StartAsync(Brief);
        using var script = new RoundScript(4, seed: 42, round: 42, 300, bitWidth: 20, degree: 3, Federation);
        var cluster = new ClusterRoundClient(_cluster.GrainFactory, Federation, 42);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);

        await cluster.Round.AbortAsync("the coordinator stopped (test)").WaitAsync(RoundScript.Timeout);

        // Calls while it waits do not keep it alive.
        await AssertDeactivatedAsync(cluster.Round, keepCalling: true);
    }

    /// <summary>
    /// An agent whose survivor signature or unmasking response was accepted but whose reply was lost retries it; when the
    /// retry reaches the round grain after the unmasking released the round, it is a duplicate (false), as the
    /// <see cref="ServerRound"/> answers it, not a late message. Before, it was refused as out of order and the agent
    /// reported a completed round as ended. A signature that differs from the accepted one is still refused.
    /// </summary>
    [Fact]
    public async Task RetriedSignatureAndUnmaskResponse_AfterTheRelease_AnsweredAsDuplicates()
    {
        await StartAsync(Kept);
        using var script = new RoundScript(4, seed: 44, round: 44, 300, bitWidth: 20, degree: 3, Federation);
        var cluster = new ClusterRoundClient(_cluster.GrainFactory, Federation, 44);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);
        await script.SendMaskedInputsAsync(cluster, [1, 2, 3, 4]);
        var responses = new List<UnmaskResponse>();
        await script.UnmaskAsync(cluster, [], responses.Add);
        await cluster.Round.FinishAsync().WaitAsync(RoundScript.Timeout);
        Assert.Equal(nameof(ProtocolStage.Completed), (await cluster.Round.StatusAsync().WaitAsync(RoundScript.Timeout)).Stage);
        int[] survivors = [1, 2, 3, 4];

        ConsistencySignature Resigned(int u) => new(u, script.Identities[u - 1].Sign(ProtocolLabels.ConsistencyTranscript(script.Parameters, u, survivors)));
        foreach (int u in survivors)
        {
            Assert.False(await cluster.Round.AcceptConsistencySignatureAsync(Resigned(u)).WaitAsync(RoundScript.Timeout)); // Ed25519: the same bytes again
        }

        foreach (UnmaskResponse response in responses)
        {
            Assert.False(await cluster.Round.AcceptUnmaskResponseAsync(response).WaitAsync(RoundScript.Timeout));
        }

        ConsistencySignature other = Resigned(1);
        other.Signature[0] ^= 1;
        var late = await Assert.ThrowsAsync<ClusterProtocolException>(() => cluster.Round.AcceptConsistencySignatureAsync(other).WaitAsync(RoundScript.Timeout));
        Assert.Equal($"round {Federation}/44 is over (completed); its state was released and late messages are refused as out of order", late.Message);
    }

    /// <summary>
    /// Once the round grain has unmasked the sum, an abort asked by a late slice upload (its slice grain had ended, so
    /// <see cref="ClusterRoundClient.AbortIfSliceFailedAsync(Task)"/> asks the round grain to abort) changes nothing: it is
    /// refused, the unmasked slices are still there to be read and nothing is recorded in the ledger. Before, it discarded
    /// the slices and recorded an abort over a round whose sum the coordinator was reading. The coordinator's own abort after
    /// the unmasking (e.g. a decoded sum out of its bound) is still recorded, by the driver.
    /// </summary>
    [Fact]
    public async Task AbortAsync_AfterTheSumWasUnmasked_LateUploadsAbortRefusedSlicesKeptCoordinatorsAbortRecorded()
    {
        await StartAsync(Kept);
        using var script = new RoundScript(4, seed: 43, round: 43, 300, bitWidth: 20, degree: 3, Federation);
        var factory = new Front.ClusterRoundServerFactory(_cluster.GrainFactory, 100, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        Aggregator.IRoundServer server = await factory.OpenAsync(script.Parameters, CancellationToken.None).WaitAsync(RoundScript.Timeout);
        var cluster = new ClusterRoundClient(_cluster.GrainFactory, Federation, 43);
        await script.ThroughShareKeysAsync(cluster, []);
        await script.SendMaskedInputsAsync(cluster, [1, 2, 3, 4]);
        await script.UnmaskAsync(cluster, []);
        AggregationResult single = script.Single.Finish(maxDegreeOfParallelism: 1);
        ClusterRoundResult result = await cluster.Round.FinishAsync().WaitAsync(RoundScript.Timeout);

        // Act: a late upload's failure asks the round grain to abort.
        var refused = await Assert.ThrowsAsync<ClusterProtocolException>(() => cluster.Round.AbortAsync("slice 0 has no state (a late upload, test)").WaitAsync(RoundScript.Timeout));

        // Assert: refused, the round still completed, every slice still holds its unmasked sum, nothing in the ledger.
        Assert.Equal($"round {Federation}/43 is over (completed: its sum was unmasked); it is not aborted now (slice 0 has no state (a late upload, test))", refused.Message);
        Assert.Equal(nameof(ProtocolStage.Completed), (await cluster.Round.StatusAsync().WaitAsync(RoundScript.Timeout)).Stage);
        uint[] sum = new uint[300];
        for (int k = 0; k < result.Layout.Count; k++)
        {
            Orleans.Concurrency.Immutable<uint[]> slice = await cluster.Slice(k).ResultAsync().WaitAsync(RoundScript.Timeout);
            ClusterRoundClient.GatherSlice(result.Layout, k, slice.Value, sum);
        }

        Assert.Equal(single.Sum, sum);
        Assert.DoesNotContain(await cluster.Ledger.EntriesAsync().WaitAsync(RoundScript.Timeout), e => e.Round == 43);

        // The coordinator gives the round up after the unmasking: its abort is recorded in the ledger (by the driver).
        await server.AbortAsync("the decoded sum was out of its bound (test)", CancellationToken.None).WaitAsync(RoundScript.Timeout);
        LedgerEntry entry = Assert.Single(await cluster.Ledger.EntriesAsync().WaitAsync(RoundScript.Timeout), e => e.Round == 43);
        Assert.Equal((false, "the decoded sum was out of its bound (test)"), (entry.Completed, entry.AbortReason));
    }

    /// <summary>Starts the silo, its round grains kept <paramref name="keptAfterEnd"/> after their round ended.</summary>
    private async Task StartAsync(TimeSpan keptAfterEnd)
    {
        var builder = new TestClusterBuilder(1);
        builder.Properties[KeptAfterEndKey] = keptAfterEnd.TotalSeconds.ToString(CultureInfo.InvariantCulture);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync().WaitAsync(TimeSpan.FromSeconds(120));
    }

    /// <summary>Waits (at most 60 s, the grain kept <see cref="Brief"/> after its end) until the grain has no activation.</summary>
    private async Task AssertDeactivatedAsync(IRoundGrain round, bool keepCalling = false)
    {
        IManagementGrain management = _cluster.GrainFactory.GetGrain<IManagementGrain>(0);
        var reference = (GrainReference)(object)round;
        DateTime deadline = DateTime.UtcNow.AddSeconds(60);
        while (await management.GetGrainActivationCount(reference).WaitAsync(RoundScript.Timeout) > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the round grain is still active 60 s after its round ended (kept for 1 s)");
            if (keepCalling)
            {
                ClusterRoundStatus status = await round.StatusAsync().WaitAsync(RoundScript.Timeout);
                if (status.Stage == "Lost")
                {
                    return; // the call reached a new activation: the ended one is gone
                }
            }

            await Task.Delay(200);
        }

        // A later call finds a new activation without the round (and the old one's state is gone with it).
        Assert.Equal("Lost", (await round.StatusAsync().WaitAsync(RoundScript.Timeout)).Stage);
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddSecureFedCluster();
            siloBuilder.AddMemoryGrainStorage("securefed");
            double seconds = double.Parse(siloBuilder.Configuration[KeptAfterEndKey]!, CultureInfo.InvariantCulture);
            siloBuilder.Services.AddSingleton(new RoundGrainOptions { KeptAfterEnd = TimeSpan.FromSeconds(seconds) });
        }
    }
}
