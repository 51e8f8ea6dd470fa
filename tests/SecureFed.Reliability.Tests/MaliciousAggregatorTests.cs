using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Privacy;
using SecureFed.Protocol;
using SecureFed.Testing;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A real agent (<see cref="AgentRunner"/> + <see cref="AggregatorClient"/>, FakeTrainer) against a fake aggregator
/// over mTLS gRPC on 127.0.0.1 that runs one honest round and then misbehaves. The agent must refuse, reveal nothing
/// (checked on what the fake received), log and audit the reason, and keep its ledger, audit log and model intact.
/// </summary>
public sealed partial class MaliciousAggregatorTests : IDisposable
{
    private const int Parameters = 2_000;
    private static readonly string[] Sites = ["site-a", "site-b", "site-c", "site-d"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-malicious-").FullName;

    public static TheoryData<AggregatorMisbehaviour, string> Cases => new()
    {
        { AggregatorMisbehaviour.BothSharesOfPeer, "asked for both shares of" },
        { AggregatorMisbehaviour.UnsignedSurvivorSet, "survivor set differs from the one this site signed" },
        { AggregatorMisbehaviour.TooFewSignatures, "only 2 survivors signed the survivor set; t = 3" },
        { AggregatorMisbehaviour.ForgedSignature, "does not verify for this survivor set" },
        { AggregatorMisbehaviour.ModelWrongLength, $"model of {Parameters + 3} parameters" },
        { AggregatorMisbehaviour.ModelWrongDigest, "is not the announced version 1" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Agent_AggregatorMisbehavesInRound2_RefusesRevealsNothingAuditsReasonStateIntact(AggregatorMisbehaviour misbehaviour, string reason)
    {
        (ConcurrentQueue<AgentRoundReport> reports, CapturingLogger logger, MaliciousAggregatorService fake, float[]? latest,
            byte[] ledgerBefore, byte[] auditBefore, byte[] modelBefore, string data) = await RunAsync(misbehaviour, maxRetries: 1);
        string ledgerPath = Path.Combine(data, "privacy-ledger.jsonl");
        string auditPath = Path.Combine(AgentState.AuditDirectory(data), AuditLog.LogFileName);
        string modelPath = Path.Combine(data, "model.bin");

        // Round 1 was honest and completed (so the fake is faithful enough); round 2 was refused with the reason.
        Assert.Contains(reports, r => r.Round == 1 && r.Completed);
        AgentRoundReport refused = Assert.Single(reports, r => r.Round == 2);
        Assert.False(refused.Completed);
        Assert.StartsWith("refused: ", refused.Outcome, StringComparison.Ordinal);
        Assert.Contains(reason, refused.Outcome, StringComparison.Ordinal);
        Assert.Contains(logger.Lines, l => l.Level == LogLevel.Warning && l.Message.Contains(reason, StringComparison.Ordinal));

        // Nothing was revealed: no unmasking response in round 2 (round 1 had exactly one); a refused model means the
        // agent did not even advertise keys.
        IReadOnlyList<(long Round, string Call)> received = fake.Received;
        Assert.Single(received, c => c.Round == 1 && c.Call == "Unmask");
        Assert.DoesNotContain(received, c => c.Round == 2 && c.Call == "Unmask");
        bool modelAttack = misbehaviour is AggregatorMisbehaviour.ModelWrongLength or AggregatorMisbehaviour.ModelWrongDigest;
        if (modelAttack)
        {
            Assert.DoesNotContain(received, c => c.Round == 2 && c.Call is "AdvertiseKeys" or "ShareKeys" or "UploadMaskedInput" or "SignSurvivors");
        }
        else
        {
            Assert.Contains(received, c => c.Round == 2 && c.Call == "AwaitUnmaskRequest");
        }

        // The audit log: the refusal with its reason, no unmask message sent in round 2, earlier lines intact, verifies.
        string[] audit = File.ReadAllLines(auditPath);
        Assert.Contains(audit, l => l.Contains($"\"{AuditEvents.Refusal}\"", StringComparison.Ordinal) && RoundTwo().IsMatch(l) && l.Contains(reason, StringComparison.Ordinal));
        Assert.DoesNotContain(audit, l => l.Contains($"\"{AuditEvents.MessageSent}\"", StringComparison.Ordinal) && RoundTwo().IsMatch(l) && l.Contains("\"unmask\"", StringComparison.Ordinal));
        Assert.True(File.ReadAllBytes(auditPath).AsSpan().StartsWith(auditBefore), "audit lines written before round 2 changed");
        AuditVerification verification = AuditVerifier.Verify(AgentState.AuditDirectory(data));
        Assert.True(verification.Ok, verification.FirstProblem);

        // The ledger: round 1 intact; round 2 spent only the record-level budget, and only when the masked input left.
        Assert.True(File.ReadAllBytes(ledgerPath).AsSpan().StartsWith(ledgerBefore), "ledger lines written before round 2 changed");
        IReadOnlyList<LedgerEntry> entries = PrivacyLedger.OpenReadOnly(ledgerPath).Entries;
        Assert.Equal([Guarantee.Record, Guarantee.Site], entries.Where(e => e.Round == 1).Select(e => e.Guarantee));
        Assert.Equal(modelAttack ? [] : [Guarantee.Record], entries.Where(e => e.Round == 2).Select(e => e.Guarantee));

        // The model: a refused download leaves the previous model on disk and in memory.
        byte[] expectedModel = WireEncoding.ModelBytes(fake.Model(modelAttack ? 0 : 1));
        Assert.Equal(expectedModel, File.ReadAllBytes(modelPath));
        Assert.Equal(expectedModel, WireEncoding.ModelBytes(latest));
        Assert.Equal(WireEncoding.ModelBytes(fake.Model(0)), modelBefore);
    }

    [Fact]
    public async Task Agent_AggregatorAnswersUnknown_NotRetriedRoundEndedAgentServiceGoesOn()
    {
        (ConcurrentQueue<AgentRoundReport> reports, CapturingLogger logger, MaliciousAggregatorService fake, _, _, _, _, string data)
            = await RunAsync(AggregatorMisbehaviour.ServerError, maxRetries: 3);

        // Unknown is an unhandled server exception: the same request would hit it again, so it is sent once, not 4 times.
        Assert.Single(fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
        AgentRoundReport ended = Assert.Single(reports, r => r.Round == 2);
        Assert.False(ended.Completed);
        Assert.StartsWith("ended: Unknown: ", ended.Outcome, StringComparison.Ordinal);
        Assert.Contains(logger.Lines, l => l.Level == LogLevel.Warning && l.Message.Contains("Unknown", StringComparison.Ordinal));

        // The agent service did not crash: it asked for the next round and stopped only when told the federation had finished.
        Assert.Contains(fake.Received, c => c.Round == MaliciousAggregatorService.Rounds + 1 && c.Call == "AwaitRound");
        Assert.DoesNotContain(PrivacyLedger.OpenReadOnly(Path.Combine(data, "privacy-ledger.jsonl")).Entries, e => e.Round == 2);
        AuditVerification verification = AuditVerifier.Verify(AgentState.AuditDirectory(data));
        Assert.True(verification.Ok, verification.FirstProblem);
    }

    [Fact]
    public async Task Agent_AggregatorAnnouncesProtocolVersion1_DeclinesNamingBothVersionsSendsNoKeys()
    {
        (ConcurrentQueue<AgentRoundReport> reports, _, MaliciousAggregatorService fake, _, _, _, _, string data)
            = await RunAsync(AggregatorMisbehaviour.OldProtocolVersion, maxRetries: 1);

        AgentRoundReport declined = Assert.Single(reports, r => r.Round == 2);
        Assert.Equal($"declined: the round runs protocol version 1; this site speaks versions {ProtocolLabels.ProtocolVersion} and 4", declined.Outcome);
        Assert.Contains(fake.Received, c => c.Round == 2 && c.Call == "DeclineRound");
        Assert.DoesNotContain(fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
        Assert.DoesNotContain(PrivacyLedger.OpenReadOnly(Path.Combine(data, "privacy-ledger.jsonl")).Entries, e => e.Round == 2);
    }

    [Theory]
    [InlineData("complete", "the round uses a sparse masking graph (k = 2) for 4 sites; this site's Graph policy is complete, which accepts a sparse graph only above 512 sites")]
    [InlineData("sparse", "the sparse masking graph's threshold t = 2 of 3 share holders does not meet the 2^-40 privacy bound for an assumed corrupt fraction of 0.05")]
    public async Task Agent_AggregatorAnnouncesSmallSparseGraph_DeclinesWithTheReasonSendsNoKeys(string graph, string reason)
    {
        (ConcurrentQueue<AgentRoundReport> reports, _, MaliciousAggregatorService fake, _, _, _, _, string data)
            = await RunAsync(AggregatorMisbehaviour.SmallSparseGraph, maxRetries: 1, graph);

        // Round 1 (complete graph) was accepted under either policy; round 2 was declined before any key left.
        Assert.Contains(reports, r => r.Round == 1 && r.Completed);
        AgentRoundReport declined = Assert.Single(reports, r => r.Round == 2);
        Assert.Equal("declined: " + reason, declined.Outcome);
        Assert.Contains(fake.Received, c => c.Round == 2 && c.Call == "DeclineRound");
        Assert.DoesNotContain(fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
        Assert.DoesNotContain(PrivacyLedger.OpenReadOnly(Path.Combine(data, "privacy-ledger.jsonl")).Entries, e => e.Round == 2);
    }

    /// <summary>Runs the real agent for site-a against the fake aggregator until the federation finishes (60 s at most).</summary>
    private async Task<(ConcurrentQueue<AgentRoundReport> Reports, CapturingLogger Logger, MaliciousAggregatorService Fake, float[]? Latest,
        byte[] LedgerBefore, byte[] AuditBefore, byte[] ModelBefore, string Data)> RunAsync(AggregatorMisbehaviour misbehaviour, int maxRetries, string graph = "complete", Action<AgentOptions>? configure = null, FakeTrainer? trainer = null)
    {
        ProvisionResult fed = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "malicious", Sites, "127.0.0.1"));
        var peerKits = Sites.Skip(1).ToDictionary(s => s, s => PartyKit.Load(fed.SiteKitDirectories[s]));
        using PartyKit aggregatorKit = PartyKit.Load(fed.AggregatorKitDirectory);
        string data = Path.Combine(_dir, "agent");
        string ledgerPath = Path.Combine(data, "privacy-ledger.jsonl");
        string auditPath = Path.Combine(AgentState.AuditDirectory(data), AuditLog.LogFileName);
        string modelPath = Path.Combine(data, "model.bin");
        byte[] ledgerBefore = [];
        byte[] auditBefore = [];
        byte[] modelBefore = [];
        var fake = new MaliciousAggregatorService(aggregatorKit.Manifest, Sites, peerKits, Parameters, misbehaviour)
        {
            BeforeRound2 = () =>
            {
                ledgerBefore = File.ReadAllBytes(ledgerPath);
                auditBefore = File.ReadAllBytes(auditPath);
                modelBefore = File.ReadAllBytes(modelPath);
            },
        };
        WebApplication app = await StartAsync(aggregatorKit, fake);
        var logger = new CapturingLogger();
        var reports = new ConcurrentQueue<AgentRoundReport>();
        float[]? latest;
        try
        {
            var options = new AgentOptions
            {
                Site = Sites[0],
                Aggregator = AggregatorHost.BoundAddress(app).ToString(),
                KitDirectory = fed.SiteKitDirectories[Sites[0]],
                DataDirectory = data,
                CallTimeoutSeconds = 10,
                EpsilonBudget = 1000,
                SiteEpsilonBudget = 1000,
                MaxRetries = maxRetries,
                Graph = graph,
            };
            configure?.Invoke(options);
            using AgentState state = AgentState.Open(options);
            using var client = new AggregatorClient(new Uri(options.Aggregator), state.Kit, TimeSpan.FromSeconds(10), options.MaxRetries);
            var runner = new AgentRunner(options, state.Kit, client, trainer ?? new FakeTrainer(Sites[0], Parameters, 500), state.Ledger, state.Audit, logger);
            runner.RoundFinished += (_, r) => reports.Enqueue(r);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await runner.RunAsync(timeout.Token);
            Assert.False(timeout.IsCancellationRequested, "the agent did not finish within 60 s");
            latest = runner.LatestModel;
        }
        finally
        {
            fake.Dispose();
            await app.StopAsync();
            await app.DisposeAsync();
            foreach (PartyKit kit in peerKits.Values)
            {
                kit.Dispose();
            }
        }

        return (reports, logger, fake, latest, ledgerBefore, auditBefore, modelBefore, data);
    }

    /// <param name="kit">The aggregator's kit.</param>
    /// <param name="service">The fake.</param>
    /// <param name="extraListeners">Further agent-facing listeners (other ports, each with its own connection gate), e.g. as slice endpoints of other authorities.</param>
    internal static async Task<WebApplication> StartAsync(PartyKit kit, MaliciousAggregatorService service, int extraListeners = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // The product's agent-facing endpoint (mutual TLS), so the malicious aggregator is reached exactly as the real one.
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            for (int i = 0; i <= extraListeners; i++)
            {
                AgentListener.Listen(kestrel, new Uri("https://127.0.0.1:0"), kit, new ConnectionGate(ConnectionGate.DefaultLimitPerSite));
            }
        });
        builder.Services.AddGrpc(grpc => grpc.EnableDetailedErrors = true);
        builder.Services.AddSingleton(service);
        WebApplication app = builder.Build();
        app.MapGrpcService<MaliciousAggregatorService>();
        await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return app;
    }

    [GeneratedRegex("\"round\":\\s*2[,}]")]
    private static partial Regex RoundTwo();

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
