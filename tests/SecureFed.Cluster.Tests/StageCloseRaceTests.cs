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

        private sealed class Server(IRoundServer inner, int late, LateUploadAtClose owner) : IRoundServer
        {
            private readonly TaskCompletionSource _closing = new(TaskCreationOptions.RunContinuationsAsynchronously);
            private readonly TaskCompletionSource _taken = new(TaskCreationOptions.RunContinuationsAsynchronously);

            public ProtocolStage Stage => inner.Stage;

            public IReadOnlyCollection<int> Delivered => inner.Delivered;

            public IReadOnlyCollection<int> Expected => inner.Expected;

            public SliceUploadLayout? SliceUploads => inner.SliceUploads;

            public Task<RoundServerStatus> StatusAsync(CancellationToken cancellationToken) => inner.StatusAsync(cancellationToken);

            public Task<bool> AcceptAdvertisementAsync(KeyAdvertisement advertisement, CancellationToken cancellationToken) => inner.AcceptAdvertisementAsync(advertisement, cancellationToken);

            public Task<IReadOnlyList<int>> CloseAdvertiseKeysAsync(CancellationToken cancellationToken) => inner.CloseAdvertiseKeysAsync(cancellationToken);

            public Task<IReadOnlyList<KeyAdvertisement>> AdvertisementsForAsync(int recipient, CancellationToken cancellationToken) => inner.AdvertisementsForAsync(recipient, cancellationToken);

            public Task<bool> AcceptSharesAsync(int sender, IReadOnlyList<EncryptedShare> shares, CancellationToken cancellationToken) => inner.AcceptSharesAsync(sender, shares, cancellationToken);

            public Task<IReadOnlyList<int>> CloseShareKeysAsync(CancellationToken cancellationToken) => inner.CloseShareKeysAsync(cancellationToken);

            public Task<IReadOnlyList<EncryptedShare>> SharesForAsync(int recipient, CancellationToken cancellationToken) => inner.SharesForAsync(recipient, cancellationToken);

            public async Task AcceptMaskedInputAsync(int sender, ReadOnlyMemory<uint> maskedInput, CancellationToken cancellationToken)
            {
                if (sender != late)
                {
                    await inner.AcceptMaskedInputAsync(sender, maskedInput, cancellationToken);
                    return;
                }

                Interlocked.Increment(ref owner._held);
                await _closing.Task.WaitAsync(cancellationToken);
                try
                {
                    await inner.AcceptMaskedInputAsync(sender, maskedInput, cancellationToken);
                }
                finally
                {
                    _taken.TrySetResult();
                }
            }

            public Task<SliceUploadOutcome> AcceptMaskedInputSliceAsync(int sender, int slice, string sha256, SliceWordsReader words, CancellationToken cancellationToken) =>
                inner.AcceptMaskedInputSliceAsync(sender, slice, sha256, words, cancellationToken);

            public Task<string?> SliceElsewhereAsync(int slice, CancellationToken cancellationToken) => inner.SliceElsewhereAsync(slice, cancellationToken);

            public Task<IReadOnlyList<string>> SliceDigestsAsync(int sender, CancellationToken cancellationToken) => inner.SliceDigestsAsync(sender, cancellationToken);

            public async Task<IReadOnlyList<int>> CloseMaskedInputAsync(CancellationToken cancellationToken)
            {
                _closing.TrySetResult();
                await _taken.Task.WaitAsync(Timeout, cancellationToken);
                return await inner.CloseMaskedInputAsync(cancellationToken);
            }

            public Task<bool> AcceptConsistencySignatureAsync(ConsistencySignature signature, CancellationToken cancellationToken) => inner.AcceptConsistencySignatureAsync(signature, cancellationToken);

            public Task<UnmaskRequest> CloseConsistencyAsync(CancellationToken cancellationToken) => inner.CloseConsistencyAsync(cancellationToken);

            public Task<bool> AcceptUnmaskResponseAsync(UnmaskResponse response, CancellationToken cancellationToken) => inner.AcceptUnmaskResponseAsync(response, cancellationToken);

            public Task<string?> UnmaskingShortfallAsync(int awaited, CancellationToken cancellationToken) => inner.UnmaskingShortfallAsync(awaited, cancellationToken);

            public Task<AggregationResult> FinishAsync(CancellationToken cancellationToken) => inner.FinishAsync(cancellationToken);

            public Task AbortAsync(string reason, CancellationToken cancellationToken) => inner.AbortAsync(reason, cancellationToken);
        }
    }
}
