using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A message the round takes after the coordinator read the stage's status but before the stage closed (hostile-site review,
/// session 57: a site can time its last message for the cutoff): the stage's dropout line and record come from the set the
/// close fixed, so the site is not audited as a dropout of a stage whose message is in the round. In one process, with
/// real agents over mTLS.
/// </summary>
public sealed class StageCloseRaceTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-close-race-").FullName;

    [Fact]
    public async Task CloseMaskedInput_UploadAcceptedAfterTheStatusBeforeTheClose_NoDropoutLineAndInTheStageRecord()
    {
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), "close-race", ["site-a", "site-b", "site-c"]);
        string data = Path.Combine(_dir, "aggregator");
        Dictionary<string, string?> settings = FrontFederation.Flatten(fed.AggregatorSettings(data, 0, rounds: 1));
        settings["SecureFed:Federation"] = "close-race";
        settings["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        settings["SecureFed:StageTimeoutSeconds"] = "3";
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var servers = new LateUploadAtClose("site-c");
        WebApplication app = AggregatorHost.Build(configuration, (Func<float[]>?)null, servers, logging => logging.SetMinimumLevel(LogLevel.Warning));
        await using (app)
        {
            await app.StartAsync().WaitAsync(Timeout);
            RoundCoordinator coordinator = app.Services.GetRequiredService<RoundCoordinator>();
            fed.StartAgents(AggregatorHost.BoundAddress(app), "agents");
            await coordinator.Finished.WaitAsync(Timeout);
            Assert.Null(coordinator.Failure);
            await fed.StopAgentsAsync();
            await app.StopAsync().WaitAsync(Timeout);
        }

        Assert.Equal(1, servers.HeldUploads); // site-c's upload reached the round only once the close had begun
        List<AuditLine> audit = AuditLine.Read(AggregatorState.AuditDirectory(data));
        Assert.DoesNotContain(audit, l => l.Type == AuditEvents.Dropout && l.Text("stage") == "masked_input");
        Assert.Contains("site-c", Assert.Single(audit, l => l.Type == AuditEvents.AggregateProduced).List("participants"));
        using AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(data));
        RoundRecord round = Assert.Single(store.ListRounds());
        Assert.Equal(RoundStatus.Completed, round.Status);
        Assert.Equal(["site-a", "site-b", "site-c"], Assert.Single(round.Stages, s => s.Stage == "masked_input").Participants);
        Assert.True(AuditVerifier.Verify(AggregatorState.AuditDirectory(data)).Ok);
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
    }

    /// <summary>
    /// Round servers in this process that hold <paramref name="site"/>'s masked input until the coordinator closes the stage
    /// (its status, read before the close, does not have it), and let it in as the close begins.
    /// </summary>
    private sealed class LateUploadAtClose(string site) : IRoundServerFactory
    {
        private int _held;

        public int HeldUploads => Volatile.Read(ref _held);

        public async Task<IRoundServer> OpenAsync(RoundParameters parameters, CancellationToken cancellationToken)
        {
            IRoundServer inner = await LocalRoundServerFactory.Instance.OpenAsync(parameters, cancellationToken);
            return new Server(inner, parameters.Participants.Single(p => p.Name == site).Index, this);
        }

        private sealed class Server(IRoundServer inner, int late, LateUploadAtClose owner) : DelegatingRoundServer(inner)
        {
            private readonly TaskCompletionSource _closing = new(TaskCreationOptions.RunContinuationsAsynchronously);
            private readonly TaskCompletionSource _taken = new(TaskCreationOptions.RunContinuationsAsynchronously);

            public override async Task AcceptMaskedInputAsync(int sender, ReadOnlyMemory<uint> maskedInput, CancellationToken cancellationToken)
            {
                if (sender != late)
                {
                    await Inner.AcceptMaskedInputAsync(sender, maskedInput, cancellationToken);
                    return;
                }

                Interlocked.Increment(ref owner._held);
                await _closing.Task.WaitAsync(cancellationToken);
                try
                {
                    await Inner.AcceptMaskedInputAsync(sender, maskedInput, cancellationToken);
                }
                finally
                {
                    _taken.TrySetResult();
                }
            }

            public override async Task<IReadOnlyList<int>> CloseMaskedInputAsync(CancellationToken cancellationToken)
            {
                _closing.TrySetResult();
                await _taken.Task.WaitAsync(Timeout, cancellationToken);
                return await Inner.CloseMaskedInputAsync(cancellationToken);
            }
        }
    }
}
