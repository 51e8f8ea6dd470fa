using Microsoft.Extensions.DependencyInjection;
using Orleans.Concurrency;
using Orleans.TestingHost;
using SecureFed.Cluster.Grains;
using SecureFed.Protocol;

using static SecureFed.Cluster.Tests.SliceSpillTests;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The slice spills on disk (docs/cluster.md §1, "Spills"), counted in a spill directory of the test's own
/// (<c>SecureFed:Cluster:SpillDirectory</c>, through <see cref="SiloBuilderExtensions.AddSecureFedCluster"/>): on Unix no
/// spill file is ever on disk by name (each is unlinked once open), during a round, after it, after an abort, and none
/// is left when the silo stops with a spill still open; where the unlink fails the file is on disk while open and goes,
/// with the silo's directory, at the stop. The silo-kill case is in <see cref="MultiProcessClusterTests"/>.
/// </summary>
public sealed class SliceSpillDiskTests : IDisposable
{
    private static readonly TimeSpan Timeout = RoundScript.Timeout;
    private static string s_root = "";
    private readonly string _root = Directory.CreateTempSubdirectory("securefed-spill-disk-").FullName;

    public SliceSpillDiskTests()
    {
        s_root = Path.Combine(_root, "spills");
    }

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);
    }

    [SkippableFact]
    public async Task Spills_DuringAndAfterARoundAnAbortAndAStop_NoFileOnDiskAndNothingLeft()
    {
        Skip.If(OperatingSystem.IsWindows(), "unlink while open is the Unix path");
        await using TestCluster cluster = await StartAsync<OneSilo>();
        try
        {
            SliceSpillStore store = Store(cluster);
            Assert.Equal(Path.Combine(s_root, SliceSpillStore.FolderName), Path.GetDirectoryName(store.Directory));

            // A round: site 1's first slice streamed in part (a spill open) and never finished, the others' whole inputs, the round finished.
            using (var script = new RoundScript(3, seed: 61, round: 61, 300, bitWidth: 20, degree: 2))
            {
                ClusterRoundClient round = await OpenAsync(cluster, script, 61);
                await StreamPartAsync(script, round, 1);
                Assert.Equal(1, store.OpenSpills);
                Assert.Empty(SpillFiles());
                await script.SendMaskedInputsAsync(round, [2, 3]);
                (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(round, []);
                Assert.Equal([2, 3], clustered.Contributors);
                Assert.Equal(single.Sum, clustered.Sum);
                Assert.Equal(0, store.OpenSpills);
                Assert.Empty(SpillFiles());
            }

            // An abort with a spill open: the spill goes, nothing on disk.
            using (var script = new RoundScript(3, seed: 62, round: 62, 300, bitWidth: 20, degree: 2))
            {
                ClusterRoundClient round = await OpenAsync(cluster, script, 62);
                await StreamPartAsync(script, round, 2);
                Assert.Equal(1, store.OpenSpills);
                await round.Round.AbortAsync("aborted by the test").WaitAsync(Timeout);
                Assert.Equal(0, store.OpenSpills);
                Assert.Empty(SpillFiles());
            }

            // A stop with a spill still open (a round left at its masked-input stage): nothing left, not even the directory.
            using (var script = new RoundScript(3, seed: 63, round: 63, 300, bitWidth: 20, degree: 2))
            {
                ClusterRoundClient round = await OpenAsync(cluster, script, 63);
                await StreamPartAsync(script, round, 3);
                Assert.Equal(1, store.OpenSpills);
            }
        }
        finally
        {
            await cluster.StopAllSilosAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(s_root, SliceSpillStore.FolderName)));
    }

    [Fact]
    public async Task Stop_SpillOpenWhereUnlinkFails_FileOnDiskUntilClosedThenDirectoryRemoved()
    {
        await using TestCluster cluster = await StartAsync<OneSiloUnlinkFails>();
        try
        {
            using var script = new RoundScript(3, seed: 64, round: 64, 300, bitWidth: 20, degree: 2);
            ClusterRoundClient round = await OpenAsync(cluster, script, 64);
            await StreamPartAsync(script, round, 1);
            Assert.Single(SpillFiles()); // the fallback: on disk while open
        }
        finally
        {
            // The stop deactivates the slice (its spill is closed and its file deleted) before the directory is removed.
            await cluster.StopAllSilosAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(s_root, SliceSpillStore.FolderName)));
    }

    [Fact]
    public void RemoveAbandonedSiblings_EmptyIdleSiloDirectories_RemovedOthersKept()
    {
        string folder = Path.Combine(s_root, SliceSpillStore.FolderName);
        var store = new SliceSpillStore(Path.Combine(folder, "127.0.0.1-11111"));
        Directory.CreateDirectory(store.Directory);
        DateTime now = DateTime.UtcNow;
        string Sibling(string name, bool old, bool withFile)
        {
            string path = Path.Combine(folder, name);
            Directory.CreateDirectory(path);
            if (withFile)
            {
                File.WriteAllText(Path.Combine(path, "x.spill"), "");
            }

            Directory.SetLastWriteTimeUtc(path, old ? now.AddHours(-2) : now);
            return path;
        }

        string killed = Sibling("127.0.0.1-22222", old: true, withFile: false);
        string holding = Sibling("127.0.0.1-33333", old: true, withFile: true);
        string recent = Sibling("127.0.0.1-44444", old: false, withFile: false);
        string foreign = Sibling("notes", old: true, withFile: false);
        Directory.SetLastWriteTimeUtc(store.Directory, now.AddHours(-2));

        Assert.Equal([killed], store.RemoveAbandonedSiblings(TimeSpan.FromHours(1), now));
        Assert.All([holding, recent, foreign, store.Directory], d => Assert.True(Directory.Exists(d), d));
    }

    private static async Task<TestCluster> StartAsync<TConfigurator>()
        where TConfigurator : ISiloConfigurator, new()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<TConfigurator>();
        TestCluster cluster = builder.Build();
        await cluster.DeployAsync().WaitAsync(TimeSpan.FromSeconds(120));
        return cluster;
    }

    private static SliceSpillStore Store(TestCluster cluster)
        => ((InProcessSiloHandle)cluster.Primary!).SiloHost.Services.GetRequiredService<SliceSpillStore>();

    private static async Task<ClusterRoundClient> OpenAsync(TestCluster cluster, RoundScript script, long number)
    {
        var round = new ClusterRoundClient(cluster.GrainFactory, script.Parameters.FederationId, number);
        await round.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(Timeout);
        await script.ThroughShareKeysAsync(round, []);
        return round;
    }

    /// <summary>Streams the first half of <paramref name="site"/>'s chunk of slice 0 and leaves the upload open.</summary>
    private static async Task StreamPartAsync(RoundScript script, ClusterRoundClient round, int site)
    {
        SliceLayout layout = await round.Round.LayoutAsync().WaitAsync(Timeout);
        uint[] chunk = Chunk(layout, await MaskAsync(script, round, site), 0);
        long upload = await round.Slice(0).BeginChunkAsync(site, Sha(chunk)).WaitAsync(Timeout);
        await round.Slice(0).AddPieceAsync(site, upload, 0, new Immutable<uint[]>(chunk[..50]), 50).WaitAsync(Timeout);
    }

    private static string[] SpillFiles()
        => Directory.Exists(s_root) ? Directory.GetFiles(s_root, "*.spill", SearchOption.AllDirectories) : [];

    private sealed class OneSilo : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddSecureFedCluster(s_root);
            siloBuilder.AddMemoryGrainStorage("securefed");
        }
    }

    private sealed class OneSiloUnlinkFails : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddSecureFedCluster(s_root);
            siloBuilder.AddMemoryGrainStorage("securefed");
            siloBuilder.Services.AddSingleton<SliceSpillStore>(new UnlinkFailsStore(Path.Combine(s_root, SliceSpillStore.FolderName, "127.0.0.1-1")));
        }
    }
}
