using Grpc.Core;
using SecureFed.Agent;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <c>SecureFed:KeepModelVersions</c> in the product, end to end: the real aggregator and agents over mTLS gRPC run 3
/// rounds keeping one version; the latest is downloaded as before, a pruned version answers <c>NOT_FOUND</c> naming the
/// setting, each prune is audited (and its pages given back to the file system), and the audit log verifies.
/// </summary>
public sealed class ModelRetentionDownloadTests : IDisposable
{
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-retention-").FullName;

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

    [Fact]
    public async Task DownloadModel_KeepOneAfterThreeRounds_LatestServedPrunedVersionNotFoundAndPrunesAudited()
    {
        // Arrange: 3 rounds keeping one model version.
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), Sites, new Dictionary<string, string>
        {
            ["Rounds"] = "3",
            ["KeepModelVersions"] = "1",
            // No test here waits for a deadline to pass. 60 s, never waited out, so that a site starved for seconds on a
            // loaded machine is not dropped (TestFederation's default stage deadline is 3 s).
            ["StageTimeoutSeconds"] = "60",
            ["TrainingTimeoutSeconds"] = "60",
        });
        await fed.StartAggregatorAsync();
        for (int i = 0; i < Sites.Length; i++)
        {
            fed.StartAgent(Sites[i], 500);
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));
        await fed.StopAgentsAsync();
        Assert.Equal([3L], fed.State.Store.ListModels().Select(m => m.Version));
        Assert.True(fed.State.Store.ReleasesFreePages); // a new store: incremental auto-vacuum
        Assert.Equal(0, fed.State.Store.FreeBytes()); // each pruning round gave the pruned version's pages back

        // Act: a site asks for the latest version and for a pruned one.
        var options = new AgentOptions
        {
            Site = Sites[0],
            Aggregator = fed.Address.ToString(),
            KitDirectory = fed.Provisioned.SiteKitDirectories[Sites[0]],
            DataDirectory = Path.Combine(_dir, "probe"),
            EpsilonBudget = 1000,
            SiteEpsilonBudget = 1000,
        };
        using AgentState state = AgentState.Open(options);
        using var client = new AggregatorClient(fed.Address, state.Kit, TimeSpan.FromSeconds(10), maxRetries: 0, handler: TestFederation.SiteHandler(state.Kit));
        static ModelRequest Request(ulong version) => new()
        {
            Header = new Header { FederationId = TestFederation.FederationName, Sender = Sites[0], Stage = Stage.Model },
            Version = version,
        };

        (long version, float[] values, string sha) = await client.DownloadModelAsync(Request(3), TestFederation.Parameters, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        var pruned = await Assert.ThrowsAsync<RpcException>(() => client.DownloadModelAsync(Request(1), TestFederation.Parameters, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));

        // Assert
        Assert.Equal(3, version);
        Assert.Equal(fed.State.Store.LatestModel()!.Sha256, sha);
        Assert.Equal(TestFederation.Parameters, values.Length);
        Assert.Equal(StatusCode.NotFound, pruned.StatusCode);
        Assert.Contains("model version 1 does not exist (latest is 3; the aggregator keeps only the newest 1, SecureFed:KeepModelVersions)", pruned.Status.Detail, StringComparison.Ordinal);
        string audit = AggregatorStateAudit(fed);
        string[] prunes = [.. File.ReadLines(Path.Combine(audit, AuditLog.LogFileName)).Where(l => l.Contains($"\"{AuditEvents.ModelsPruned}\"", StringComparison.Ordinal))];
        Assert.Equal(3, prunes.Length); // versions 0, 1 and 2, one per round
        Assert.True(AuditVerifier.Verify(audit).Ok);
    }

    private static string AggregatorStateAudit(TestFederation fed) => Aggregator.AggregatorState.AuditDirectory(fed.AggregatorDataDirectory);
}
