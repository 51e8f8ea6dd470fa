using Microsoft.AspNetCore.Builder;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Crypto;
using SecureFed.Federation;
using SecureFed.Privacy;
using SecureFed.Protocol;
using Microsoft.Extensions.Logging;
using SecureFed.Testing;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A real ENOSPC ("No space left on device") from the kernel, without root: the descriptor the product writes through
/// is pointed at <c>/dev/full</c> (see <see cref="DevFull"/>). The privacy ledger and the audit log (the append-only
/// state of both agent and aggregator) must fail with an error naming their file, keep every earlier line intact and
/// verifiable, and accept appends again once space is back; an agent must stop before anything leaves the site.
/// Skipped (return early) where /dev/full does not exist.
/// </summary>
public sealed class DiskFullTests : IDisposable
{
    private const string NoSpace = "No space left on device";
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-diskfull-").FullName;

    [Fact]
    public void PrivacyLedger_DiskFullDuringAppend_IOExceptionNamingFileEarlierEntriesIntact()
    {
        if (!DevFull.Available)
        {
            Console.WriteLine("skipped: /dev/full does not exist on this system");
            return;
        }

        string path = Path.Combine(_dir, "privacy-ledger.jsonl");
        PrivacyLedger ledger = PrivacyLedger.Open(path, "site-a");
        ledger.Append(1, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.05, 1.0, 20), 1e-5);
        ledger.Append(1, Guarantee.Site, PlannedMechanism.Zcdp(0.01), 1e-5);
        byte[] before = File.ReadAllBytes(path);
        Action<FileStream, byte[]> normal = ledger.AppendWriter;
        ledger.AppendWriter = (stream, bytes) =>
        {
            DevFull.Redirect(stream.SafeFileHandle);
            normal(stream, bytes);
        };

        IOException ex = Assert.Throws<IOException>(() => ledger.Append(2, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.05, 1.0, 20), 1e-5));

        Assert.Contains(Path.GetFullPath(path), ex.Message, StringComparison.Ordinal);
        Assert.Contains(NoSpace, ex.Message, StringComparison.Ordinal);
        Assert.Contains("left unchanged", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(2, ledger.Entries.Count);
        Assert.Equal(2, PrivacyLedger.OpenReadOnly(path).Entries.Count);

        // Space is back: the same ledger object appends again and the file still verifies.
        ledger.AppendWriter = normal;
        ledger.Append(2, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.05, 1.0, 20), 1e-5);
        Assert.True(File.ReadAllBytes(path).AsSpan().StartsWith(before));
        Assert.Equal(3, PrivacyLedger.OpenReadOnly(path).Entries.Count);
    }

    [Fact]
    public void AuditLog_DiskFullDuringAppend_IOExceptionNamingFileFaultedLogVerifiesAndReopens()
    {
        if (!DevFull.Available)
        {
            Console.WriteLine("skipped: /dev/full does not exist on this system");
            return;
        }

        string dir = Path.Combine(_dir, "audit");
        string file = Path.Combine(dir, AuditLog.LogFileName);
        byte[] seed = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        byte[] before;
        using (Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(seed))
        using (AuditLog log = AuditLog.Open(dir, "site-a", key, "securefed/test/site-a"))
        {
            log.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
            log.Append(AuditEvents.MessageSent, f => f.Add("round", 1).Add("bytes", 42));
            log.Checkpoint();
            before = File.ReadAllBytes(file);
            DevFull.Redirect(DevFull.DescriptorOf(file));

            IOException ex = Assert.Throws<IOException>(() => log.Append(AuditEvents.MessageSent, f => f.Add("round", 2)));
            Assert.Contains(Path.GetFullPath(file), ex.Message, StringComparison.Ordinal);
            Assert.Contains(NoSpace, ex.Message, StringComparison.Ordinal);

            // Fail closed: the log refuses further appends until it is reopened (the last line could be torn).
            InvalidOperationException faulted = Assert.Throws<InvalidOperationException>(() => log.Append(AuditEvents.MessageSent, f => f.Add("round", 2)));
            Assert.Contains("faulted", faulted.Message, StringComparison.Ordinal);
            Assert.Equal(before, File.ReadAllBytes(file));
        }

        AuditVerification verification = AuditVerifier.Verify(dir);
        Assert.True(verification.Ok, verification.FirstProblem);

        // Space is back: the log reopens on the same file and appends after the intact lines.
        using (Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(seed))
        using (AuditLog log = AuditLog.Open(dir, "site-a", key, "securefed/test/site-a"))
        {
            log.Append(AuditEvents.MessageSent, f => f.Add("round", 2));
        }

        Assert.True(File.ReadAllBytes(file).AsSpan().StartsWith(before));
        verification = AuditVerifier.Verify(dir);
        Assert.True(verification.Ok, verification.FirstProblem);
    }

    [Fact]
    public async Task Agent_LedgerDiskFullBeforeMaskedInput_StopsNamingLedgerNothingUploadedStateIntact()
    {
        if (!DevFull.Available)
        {
            Console.WriteLine("skipped: /dev/full does not exist on this system");
            return;
        }

        AgentState? state = null;
        byte[] ledgerBefore = [];
        (IOException ex, MaliciousAggregatorService fake, string data) = await RunAgentAsync(() =>
        {
            ledgerBefore = File.ReadAllBytes(state!.Ledger.FilePath);
            Action<FileStream, byte[]> normal = state.Ledger.AppendWriter;
            state.Ledger.AppendWriter = (stream, bytes) =>
            {
                DevFull.Redirect(stream.SafeFileHandle);
                normal(stream, bytes);
            };
        }, s => state = s);
        using (fake)
        {
            string ledger = Path.Combine(data, "privacy-ledger.jsonl");
            Assert.Contains(Path.GetFullPath(ledger), ex.Message, StringComparison.Ordinal);
            Assert.Contains(NoSpace, ex.Message, StringComparison.Ordinal);
            // The DP-SGD output is accounted before it leaves: it could not be, so it did not leave.
            Assert.Contains(fake.Received, c => c.Round == 2 && c.Call == "ShareKeys");
            Assert.DoesNotContain(fake.Received, c => c.Round == 2 && c.Call is "UploadMaskedInput" or "Unmask");
            Assert.Equal(ledgerBefore, File.ReadAllBytes(ledger));
            Assert.Equal(2, PrivacyLedger.OpenReadOnly(ledger).Entries.Count);
            AuditVerification audit = AuditVerifier.Verify(AgentState.AuditDirectory(data));
            Assert.True(audit.Ok, audit.FirstProblem);
        }
    }

    [Fact]
    public async Task Agent_AuditDiskFullAtRoundStart_StopsNamingLogNothingSentLogVerifies()
    {
        if (!DevFull.Available)
        {
            Console.WriteLine("skipped: /dev/full does not exist on this system");
            return;
        }

        string auditFile = "";
        byte[] auditBefore = [];
        AgentState? state = null;
        (IOException ex, MaliciousAggregatorService fake, string data) = await RunAgentAsync(() =>
        {
            auditFile = Path.Combine(AgentState.AuditDirectory(Path.GetDirectoryName(state!.Ledger.FilePath)!), AuditLog.LogFileName);
            auditBefore = File.ReadAllBytes(auditFile);
            DevFull.Redirect(DevFull.DescriptorOf(auditFile));
        }, s => state = s);
        using (fake)
        {
            Assert.Contains(Path.GetFullPath(auditFile), ex.Message, StringComparison.Ordinal);
            Assert.Contains(NoSpace, ex.Message, StringComparison.Ordinal);
            // Every message that leaves the site is audited first: nothing was audited, so nothing left.
            Assert.DoesNotContain(fake.Received, c => c.Round == 2 && c.Call is not ("AwaitRound" or "DeclineRound"));
            Assert.Equal(auditBefore, File.ReadAllBytes(auditFile));
            AuditVerification audit = AuditVerifier.Verify(AgentState.AuditDirectory(data));
            Assert.True(audit.Ok, audit.FirstProblem);
            Assert.Equal(2, PrivacyLedger.OpenReadOnly(Path.Combine(data, "privacy-ledger.jsonl")).Entries.Count);
        }
    }

    [Fact]
    public async Task Aggregator_AuditDiskFullMidRound_StopsNamingLogHistoryIntactFreshRoundAfterRestart()
    {
        if (!DevFull.Available)
        {
            Console.WriteLine("skipped: /dev/full does not exist on this system");
            return;
        }

        string[] sites = ["site-a", "site-b", "site-c"];
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), sites, new Dictionary<string, string> { ["Rounds"] = "1", ["TrainingTimeoutSeconds"] = "10" });
        var logs = new CapturingLogger();
        await fed.StartAggregatorAsync(logs: logs);
        // The masked inputs are held back until the disk is full: on a fast machine the round could otherwise finish
        // (and store model 1) between the test seeing the ShareKeys stage and redirecting the log.
        var uploads = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        foreach ((string site, int i) in sites.Select((s, i) => (s, i)))
        {
            fed.StartAgent(site, 100 * (i + 1), wrap: inner => new HoldUploads(inner, uploads.Task));
        }

        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            while (fed.Coordinator.Current is not { Round: 1 } open || open.Server.Stage < ProtocolStage.ShareKeys)
            {
                await Task.Delay(20, wait.Token);
            }
        }

        string auditFile = Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName);
        string budgetFile = Path.Combine(fed.AggregatorDataDirectory, "privacy-ledger.jsonl");
        byte[] auditBefore = File.ReadAllBytes(auditFile);
        byte[] budgetBefore = File.ReadAllBytes(budgetFile);
        byte[] model0 = fed.State.Store.LoadModel(0)!;
        DevFull.Redirect(DevFull.DescriptorOf(auditFile));
        uploads.SetResult();

        // The next audit append fails with ENOSPC: the aggregator stops running rounds and logs the error with the path.
        await fed.Coordinator.Finished.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.NotNull(fed.Coordinator.Failure); // what `securefed aggregator` reports (exit 1) instead of "federation finished"
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            while (!logs.Lines.Any(l => l.Level >= LogLevel.Error && l.Message.Contains(auditFile, StringComparison.Ordinal) && l.Message.Contains(NoSpace, StringComparison.Ordinal)))
            {
                Assert.False(wait.IsCancellationRequested, "no error naming the audit log was logged: " + string.Join(" || ", logs.Lines.Select(l => $"{l.Level}: {l.Message}")));
                await Task.Delay(50, CancellationToken.None);
            }
        }

        Assert.Null(fed.State.Store.LoadModel(1));
        // (an append already in flight when the descriptor was redirected may still have landed: compare prefixes)
        byte[] auditAtFailure = File.ReadAllBytes(auditFile);
        Assert.True(auditAtFailure.AsSpan().StartsWith(auditBefore), "audit lines written before the disk filled up changed");
        await fed.StopAggregatorAsync();
        await fed.StopAgentsAsync();
        Assert.Equal(auditAtFailure, File.ReadAllBytes(auditFile));
        Assert.Equal(budgetBefore, File.ReadAllBytes(budgetFile));
        auditBefore = auditAtFailure;

        // Space is back: the aggregator restarts on the same data directory, abandons the interrupted round and runs a
        // fresh one; nothing stored before the failure was lost and every log verifies.
        await fed.StartAggregatorAsync();
        foreach ((string site, int i) in sites.Select((s, i) => (s, i)))
        {
            fed.StartAgent(site, 100 * (i + 1));
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));
        IReadOnlyList<Aggregator.Persistence.RoundRecord> rounds = fed.State.Store.ListRounds();
        Assert.Equal([Aggregator.Persistence.RoundStatus.Aborted, Aggregator.Persistence.RoundStatus.Completed], rounds.Select(r => r.Status));
        Assert.False(string.IsNullOrWhiteSpace(rounds[0].AbortReason));
        Assert.Equal(model0, fed.State.Store.LoadModel(0));
        Assert.NotNull(fed.State.Store.LoadModel(1)); // model versions count completed rounds
        Assert.Empty(fed.State.Store.QuickCheck());
        Assert.True(File.ReadAllBytes(auditFile).AsSpan().StartsWith(auditBefore));
        Assert.True(File.ReadAllBytes(budgetFile).AsSpan().StartsWith(budgetBefore));
        await fed.StopAgentsAsync();
        AuditVerification aggregator = AuditVerifier.Verify(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory));
        Assert.True(aggregator.Ok, aggregator.FirstProblem);
        foreach (string site in sites)
        {
            AuditVerification agent = AuditVerifier.Verify(AgentState.AuditDirectory(fed.AgentDataDirectory(site)));
            Assert.True(agent.Ok, agent.FirstProblem);
        }
    }

    /// <summary>Holds every masked-input upload of the agent until <paramref name="release"/> completes.</summary>
    private sealed class HoldUploads(HttpMessageHandler inner, Task release) : DelegatingHandler(inner)
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri?.AbsolutePath.EndsWith("/UploadMaskedInput", StringComparison.Ordinal) == true)
            {
                await release.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Runs a real agent against an honest fake aggregator; <paramref name="beforeRound2"/> fills the disk.</summary>
    private async Task<(IOException Error, MaliciousAggregatorService Fake, string Data)> RunAgentAsync(Action beforeRound2, Action<AgentState> opened)
    {
        string[] sites = ["site-a", "site-b", "site-c"];
        ProvisionResult fed = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "diskfull", sites, "127.0.0.1"));
        var peerKits = sites.Skip(1).ToDictionary(s => s, s => PartyKit.Load(fed.SiteKitDirectories[s]));
        using PartyKit aggregatorKit = PartyKit.Load(fed.AggregatorKitDirectory);
        string data = Path.Combine(_dir, "agent");
        var fake = new MaliciousAggregatorService(aggregatorKit.Manifest, sites, peerKits, 500, AggregatorMisbehaviour.None) { BeforeRound2 = beforeRound2 };
        WebApplication app = await MaliciousAggregatorTests.StartAsync(aggregatorKit, fake);
        try
        {
            var options = new AgentOptions
            {
                Site = sites[0],
                Aggregator = AggregatorHost.BoundAddress(app).ToString(),
                KitDirectory = fed.SiteKitDirectories[sites[0]],
                DataDirectory = data,
                CallTimeoutSeconds = 10,
                EpsilonBudget = 1000,
                SiteEpsilonBudget = 1000,
                MaxRetries = 1,
            };
            using AgentState state = AgentState.Open(options);
            opened(state);
            using var client = new AggregatorClient(new Uri(options.Aggregator), state.Kit, TimeSpan.FromSeconds(10), options.MaxRetries);
            var runner = new AgentRunner(options, state.Kit, client, new FakeTrainer(sites[0], 500, 300), state.Ledger, state.Audit, new CapturingLogger());
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            IOException ex = await Assert.ThrowsAsync<IOException>(() => runner.RunAsync(timeout.Token));
            return (ex, fake, data);
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            foreach (PartyKit kit in peerKits.Values)
            {
                kit.Dispose();
            }
        }
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
}
