using Orleans.TestingHost;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// An open round's grains are not collected by Orleans' idle-activation collector. The slice grains of a round get no call
/// between the round's opening and the first masked-input upload (training, the keys and the shares: up to
/// TrainingTimeoutSeconds, at most a day, plus a stage); with Orleans' default collection age (15 minutes) an idle open
/// slice was deactivated with its state, and the first upload then aborted the round after the honest sites had charged
/// their record-level privacy budget. The collector is forced here (IManagementGrain.ForceActivationCollection) instead of
/// waiting for it: no timing.
/// </summary>
public sealed class GrainIdleCollectionTests : IAsyncLifetime
{
    private const string Federation = "idle-collection";
    private TestCluster _cluster = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync().WaitAsync(TimeSpan.FromSeconds(120));
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.StopAllSilosAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await _cluster.DisposeAsync();
        }
    }

    [Fact]
    public async Task OpenRound_IdleSlicesAndRoundGrainCollected_RoundStillCompletes()
    {
        // Orleans' default collection age is far shorter than the longest round the settings allow (training up to 24 hours).
        Assert.True(new Orleans.Configuration.GrainCollectionOptions().CollectionAge < TimeSpan.FromHours(24), "Orleans' default collection age");
        using var script = new RoundScript(4, seed: 51, round: 51, 300, bitWidth: 20, degree: 3, Federation);
        var cluster = new ClusterRoundClient(_cluster.GrainFactory, Federation, 51);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);

        // As after a long training: every activation idle for a moment is collected (the slices have been idle since the open).
        await Task.Yield();
        IManagementGrain management = _cluster.GrainFactory.GetGrain<IManagementGrain>(0);
        await management.ForceActivationCollection(TimeSpan.FromMilliseconds(1)).WaitAsync(RoundScript.Timeout);

        ClusterRoundStatus status = await cluster.Round.StatusAsync().WaitAsync(RoundScript.Timeout);
        Assert.True(status.Stage == nameof(ProtocolStage.MaskedInputCollection), $"the round grain lost its round to the idle collector: stage {status.Stage} ({status.AbortReason})");
        Exception? upload = await Record.ExceptionAsync(() => script.SendMaskedInputsAsync(cluster, [1, 2, 3, 4]));
        Assert.True(upload is null, $"the first upload after the idle slices were collected failed: {upload?.GetType().Name}: {upload?.Message}");
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(cluster, []);
        Assert.Equal(single.Sum, clustered.Sum);

        // The end still deactivates the slices (their sums were read): the delay kept them only while the round was open.
        var slice = (GrainReference)(object)cluster.Slice(0);
        DateTime deadline = DateTime.UtcNow.AddSeconds(60);
        while (await management.GetGrainActivationCount(slice).WaitAsync(RoundScript.Timeout) > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "slice 0 is still active 60 s after its sum was read");
            await Task.Delay(200);
        }
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddSecureFedCluster();
            siloBuilder.AddMemoryGrainStorage("securefed");
        }
    }
}
