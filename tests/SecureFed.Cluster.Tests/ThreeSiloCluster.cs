using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.TestingHost;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A real Orleans cluster of three in-process silos with localhost clustering and memory grain storage. Its failure
/// detection is slow to declare a silo dead (10 s probes, 3 missed, 2 votes): a silo starved for seconds on a loaded
/// machine must not be declared dead in a test that kills none. <see cref="KillableThreeSiloCluster"/> detects a killed
/// silo within seconds.
/// </summary>
public class ThreeSiloCluster : IAsyncLifetime
{
    public TestCluster Cluster { get; private set; } = null!;

    public IGrainFactory Grains => Cluster.GrainFactory;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        if (FastFailureDetection)
        {
            builder.AddSiloBuilderConfigurator<FastFailureDetectionConfigurator>();
        }

        builder.AddClientBuilderConfigurator<ClientConfigurator>();
        Cluster = builder.Build();
        await Cluster.DeployAsync().WaitAsync(TimeSpan.FromSeconds(120));
    }

    /// <summary>Whether a killed silo is declared dead within a few seconds (and so, too, a silo starved that long).</summary>
    protected virtual bool FastFailureDetection => false;

    public async Task DisposeAsync()
    {
        if (Cluster is not null)
        {
            await Cluster.StopAllSilosAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await Cluster.DisposeAsync();
        }
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddSecureFedCluster();
            siloBuilder.AddMemoryGrainStorage("securefed");
            // No test on this cluster kills a silo: a silo is declared dead only after 30 s without answering probes,
            // and only by both others, so that one starved on a loaded machine is not.
            siloBuilder.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(10);
                o.NumMissedProbesLimit = 3;
                o.NumVotesForDeathDeclaration = 2;
            });
            siloBuilder.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(15));
        }
    }

    private sealed class FastFailureDetectionConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            // A killed silo is declared dead within a few seconds, so the kill test runs in seconds.
            siloBuilder.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.NumMissedProbesLimit = 2;
                o.NumVotesForDeathDeclaration = 1;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
            });
        }
    }

    private sealed class ClientConfigurator : IClientBuilderConfigurator
    {
        public void Configure(Microsoft.Extensions.Configuration.IConfiguration configuration, IClientBuilder clientBuilder)
            => clientBuilder.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(15));
    }
}
