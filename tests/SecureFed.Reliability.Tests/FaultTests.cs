using System.Text.Json;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Reliability.Tests;

/// <summary>Dropouts at every stage, an aggregator restart mid-round, network faults, an unwritable data directory.</summary>
public sealed class FaultTests : IDisposable
{
    private static readonly string[] FourSites = ["site-a", "site-b", "site-c", "site-d"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-faults-").FullName;

    public static TheoryData<ProtocolStage, int> Dropouts => new()
    {
        { ProtocolStage.AdvertiseKeys, 1 },
        { ProtocolStage.ShareKeys, 1 },
        { ProtocolStage.MaskedInputCollection, 1 },
        { ProtocolStage.ConsistencyCheck, 1 },
        { ProtocolStage.Unmasking, 1 },
        { ProtocolStage.ShareKeys, 2 },
        { ProtocolStage.ConsistencyCheck, 2 },
        { ProtocolStage.Unmasking, 2 },
    };

    [Theory]
    [MemberData(nameof(Dropouts))]
    public async Task Round_SitesSilentFromStage_CompletesAtOrAboveThresholdAbortsBelowAndNextRoundRuns(ProtocolStage stage, int silent)
    {
        // 4 sites, complete graph, t = 3: one silent site leaves t, two leave t - 1.
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), FourSites, new Dictionary<string, string>
        {
            ["Rounds"] = silent == 1 ? "2" : "1",
            ["TrainingTimeoutSeconds"] = "60",
        });
        await fed.StartAggregatorAsync();
        // Only the silent stage's deadline must pass (3 s; at AdvertiseKeys the training deadline, 8 s: the honest sites
        // train within it); every other stage, and the next round, gets 60 s, never waited out, so that honest sites
        // starved on a loaded machine are not dropped (one dropped honest site aborts a round meant to complete).
        DropoutDeadline.ShortOnlyAt(fed.Aggregator!.Services, 1, stage, stage == ProtocolStage.AdvertiseKeys ? 8 : 3);
        for (int i = 0; i < FourSites.Length; i++)
        {
            fed.StartAgent(FourSites[i], 100 * (i + 1), i >= FourSites.Length - silent ? new DropoutHook(1, stage) : null);
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(100));

        IReadOnlyList<RoundRecord> rounds = fed.State.Store.ListRounds();
        Assert.Equal(2, rounds.Count);
        RoundRecord first = rounds[0];
        string[] silentSites = FourSites[^silent..];
        if (silent == 1)
        {
            Assert.Equal(RoundStatus.Completed, first.Status);
            bool inputSent = stage > ProtocolStage.MaskedInputCollection;
            Assert.Equal(inputSent, first.Participants.Contains(silentSites[0]));
            Assert.Equal(inputSent ? 4 : 3, first.Participants.Count);
        }
        else
        {
            Assert.Equal(RoundStatus.Aborted, first.Status);
            Assert.False(string.IsNullOrWhiteSpace(first.AbortReason));
            Assert.Null(fed.State.Store.LoadModel(2));
        }

        // The next round runs normally with everyone.
        Assert.Equal(RoundStatus.Completed, rounds[1].Status);
        Assert.Equal(FourSites, rounds[1].Participants.Order());
        Assert.All(silentSites, s => Assert.Contains(fed.Reports, r => r.Site == s && r.Round == 1 && !r.Completed));
        AssertLogsVerify(fed, FourSites);
    }

    [Fact]
    public async Task Round_SiteSilentAfterReportingTraining_GoesOnWithoutItLongBeforeTheTrainingDeadline()
    {
        // The training deadline is 600 s and is not shortened: only the silent site's missing progress reports (every
        // second; gone after 3 s of silence) can let round 1 go on without it in time (it did not, before the reports).
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), FourSites, new Dictionary<string, string>
        {
            ["Rounds"] = "2",
            ["TrainingTimeoutSeconds"] = "600",
            ["ProgressIntervalSeconds"] = "1",
            ["ProgressSilenceSeconds"] = "3",
            ["StageTimeoutSeconds"] = DropoutDeadline.LongSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), // no later stage is waited out
        });
        await fed.StartAggregatorAsync();
        for (int i = 0; i < FourSites.Length; i++)
        {
            fed.StartAgent(FourSites[i], 100 * (i + 1), i == FourSites.Length - 1 ? new DropoutHook(1, ProtocolStage.AdvertiseKeys) : null);
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(240));

        IReadOnlyList<RoundRecord> rounds = fed.State.Store.ListRounds();
        Assert.Equal([RoundStatus.Completed, RoundStatus.Completed], rounds.Select(r => r.Status));
        Assert.Equal(FourSites[..3], rounds[0].Participants.Order());
        Assert.Equal(FourSites, rounds[1].Participants.Order());
        string[] audit = File.ReadAllLines(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName));
        Assert.Contains(audit, l => l.Contains(AuditEvents.Dropout, StringComparison.Ordinal) && l.Contains("\"advertise_keys\"", StringComparison.Ordinal) && l.Contains("site-d", StringComparison.Ordinal));
        AssertLogsVerify(fed, FourSites);
    }

    [Fact]
    public async Task Aggregator_RestartedMidRound_InterruptedRoundAbortedHistoryKeptFreshRoundCompletes()
    {
        string[] sites = ["site-a", "site-b", "site-c"];
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), sites, new Dictionary<string, string>
        {
            ["Rounds"] = "2",
            ["StageTimeoutSeconds"] = "30",
            ["TrainingTimeoutSeconds"] = "30",
        });
        await fed.StartAggregatorAsync();
        for (int i = 0; i < sites.Length; i++)
        {
            // site-c stays silent in round 2 before ShareKeys, which holds round 2 open (stage timeout 30 s).
            fed.StartAgent(sites[i], 100 * (i + 1), sites[i] == "site-c" ? new DropoutHook(2, ProtocolStage.ShareKeys) : null);
        }

        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            while (fed.Coordinator.Current is not { Round: 2 } open || open.Server.Stage != ProtocolStage.ShareKeys)
            {
                await Task.Delay(50, wait.Token);
            }
        }

        string openSession = fed.Coordinator.Current!.SessionId;
        byte[] model1 = fed.State.Store.LoadModel(1)!;
        int ledgerBefore = fed.State.Store.ListLedger().Count;
        string budgetPath = Path.Combine(fed.AggregatorDataDirectory, "privacy-ledger.jsonl");
        string budgetBefore = File.ReadAllText(budgetPath);
        string auditBefore = File.ReadAllText(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName));

        await fed.StopAggregatorAsync();
        await fed.StopAgentsAsync();
        await fed.StartAggregatorAsync();
        foreach ((string site, int i) in sites.Select((s, i) => (s, i)))
        {
            fed.StartAgent(site, 100 * (i + 1));
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));

        IReadOnlyList<RoundRecord> rounds = fed.State.Store.ListRounds();
        Assert.Equal([RoundStatus.Completed, RoundStatus.Aborted, RoundStatus.Completed], rounds.Select(r => r.Status));
        Assert.NotNull(rounds[1].AbortReason);
        Assert.Equal(model1, fed.State.Store.LoadModel(1));
        Assert.NotNull(fed.State.Store.LoadModel(2));
        Assert.True(fed.State.Store.ListLedger().Count >= ledgerBefore);
        string budgetAfter = File.ReadAllText(budgetPath);
        Assert.StartsWith(budgetBefore, budgetAfter, StringComparison.Ordinal);
        Assert.True(budgetAfter.Length > budgetBefore.Length, "the fresh round's privacy spend was not recorded");
        Assert.Empty(fed.State.Store.QuickCheck());
        string auditAfter = File.ReadAllText(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName));
        Assert.StartsWith(auditBefore, auditAfter, StringComparison.Ordinal);
        // The fresh round has new keys: site-a joined round 3 under another session id than the interrupted round 2.
        string[] siteAudit = File.ReadAllLines(Path.Combine(AgentState.AuditDirectory(fed.AgentDataDirectory("site-a")), AuditLog.LogFileName));
        Assert.Contains(siteAudit, l => l.Contains(AuditEvents.RoundJoined, StringComparison.Ordinal) && l.Contains(openSession, StringComparison.Ordinal));
        string joined3 = Assert.Single(siteAudit, l => l.Contains(AuditEvents.RoundJoined, StringComparison.Ordinal) && System.Text.RegularExpressions.Regex.IsMatch(l, "\"round\":\\s*3[,}]"));
        Assert.DoesNotContain(openSession, joined3, StringComparison.Ordinal);
        Assert.Contains(fed.Reports, r => r.Round == 3 && r.Completed);
        AssertLogsVerify(fed, sites);
    }

    [Fact]
    public async Task Aggregator_KilledOrStoppedDuringUnmasking_FederationLedgerChargesTheRoundAsTheSitesDid()
    {
        string[] sites = HeldAtUnmaskingSites;
        await using TestFederation fed = await StartRoundHeldAtUnmaskingAsync();
        string auditPath = Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName);
        Assert.Equal(ProtocolStage.Unmasking, fed.Coordinator.Current!.Server.Stage);
        // What a SIGKILL at this moment leaves: the data directory as it is (the SQLite file with its WAL, no lock files).
        string killed = Path.Combine(_dir, "killed-aggregator-data");
        CopyDirectory(fed.AggregatorDataDirectory, killed);

        // The agents first: their long polls would hold the host's stop past its timeout, the audit log closing under the abort.
        await fed.StopAgentsAsync();
        await fed.StopAggregatorAsync(); // the stopped aggregator aborts the round itself
        Privacy.LedgerEntry siteCharge = Assert.Single(SiteCharges(Path.Combine(fed.AgentDataDirectory("site-a"), AgentState.LedgerFileName)));
        Assert.Equal(1, siteCharge.Round);

        // Stopped: aborted at the unmasking stage and charged as site-a charged it.
        Privacy.LedgerEntry stoppedCharge = Assert.Single(SiteCharges(AggregatorState.PrivacyLedgerPath(fed.AggregatorDataDirectory)));
        Assert.Equal(1, stoppedCharge.Round);
        Assert.Equal(((Privacy.ZcdpMechanism)siteCharge.Mechanism).Rho, ((Privacy.ZcdpMechanism)stoppedCharge.Mechanism).Rho, 12);
        Assert.Equal(siteCharge.EpsilonAfter, stoppedCharge.EpsilonAfter, 9);
        string stoppedSpent = Assert.Single(File.ReadAllLines(auditPath), l => l.Contains($"\"type\":\"{AuditEvents.PrivacySpent}\"", StringComparison.Ordinal));
        Assert.Contains("round aborted after its unmasking request (the aggregator is shutting down): charged conservatively", stoppedSpent, StringComparison.Ordinal);

        // Killed: the restart aborts the interrupted round and charges it the same, with the reason.
        await fed.StartAggregatorAsync(killed);
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            while (fed.State.Store.GetRound(1)!.Status != RoundStatus.Aborted)
            {
                await Task.Delay(50, wait.Token);
            }
        }

        Assert.Equal(siteCharge.EpsilonAfter, fed.State.Budget.Spent(1e-5), 9);
        await fed.StopAggregatorAsync();
        Privacy.LedgerEntry restartCharge = Assert.Single(SiteCharges(AggregatorState.PrivacyLedgerPath(killed)));
        Assert.Equal(1, restartCharge.Round);
        Assert.Equal(((Privacy.ZcdpMechanism)siteCharge.Mechanism).Rho, ((Privacy.ZcdpMechanism)restartCharge.Mechanism).Rho, 12);
        Assert.Equal(siteCharge.EpsilonAfter, restartCharge.EpsilonAfter, 9);
        string killedAudit = Path.Combine(AggregatorState.AuditDirectory(killed), AuditLog.LogFileName);
        string restartSpent = Assert.Single(File.ReadAllLines(killedAudit), l => l.Contains($"\"type\":\"{AuditEvents.PrivacySpent}\"", StringComparison.Ordinal));
        Assert.Contains("interrupted during unmasking (the aggregator stopped after the round's unmasking request was sent): charged conservatively", restartSpent, StringComparison.Ordinal);

        // The auditor finds the federation's charges covering the sites'.
        AuditReportResult report = AuditReport.Create([AggregatorState.AuditDirectory(killed), .. sites.Select(s => AgentState.AuditDirectory(fed.AgentDataDirectory(s)))]);
        Assert.True(report.Passed, report.Verdict + "\n" + string.Join("\n", report.Problems));

        static IEnumerable<Privacy.LedgerEntry> SiteCharges(string path) =>
            Privacy.PrivacyLedger.OpenReadOnly(path).Entries.Where(e => e.Guarantee == Privacy.Guarantee.Site);
    }

    /// <summary>
    /// A completed round's model is stored before its cost is charged to the federation's ledger and before its
    /// aggregate.produced, privacy.spent and round.completed lines are logged. An aggregator killed in between restarted on
    /// the new model with the round never charged (ε understated, the budget check too lenient) and never logged (the
    /// sites' charges for it uncovered). The test makes that state: the round held in its unmasking stage, the data
    /// directory copied as a SIGKILL leaves it, and in the copy the round completed in the store the way
    /// <see cref="AggregatorStore.CompleteRoundWithModel(long, long, ReadOnlySpan{byte}, string, IReadOnlyList{string})"/>
    /// does it. The restart charges it as the completion would have (ρ for its participants: the same ρ site-a charged
    /// for its survivors), logs the missing lines with a note, the audit report passes, and a second restart charges
    /// nothing more. With <paramref name="chargedBeforeKill"/> the kill came after the charge, before the lines: the
    /// restart logs them with the ledger's charge and charges nothing more.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Aggregator_KilledAfterStoringARoundsModel_RestartChargesAndLogsTheRound(bool chargedBeforeKill)
    {
        string[] sites = HeldAtUnmaskingSites;
        await using TestFederation fed = await StartRoundHeldAtUnmaskingAsync();
        string killed = Path.Combine(_dir, "killed-after-model");
        CopyDirectory(fed.AggregatorDataDirectory, killed);
        await fed.StopAgentsAsync();
        await fed.StopAggregatorAsync();
        Privacy.LedgerEntry siteCharge = Assert.Single(SiteCharges(Path.Combine(fed.AgentDataDirectory("site-a"), AgentState.LedgerFileName)));

        // What CompleteAsync left when killed right after storing the model: the round completed with its participants
        // (the sites whose masked inputs were collected) and model v1, the ledger and the audit log untouched.
        string[] participants;
        using (AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(killed)))
        {
            RoundRecord open = store.GetRound(1)!;
            Assert.Equal(RoundStatus.Running, open.Status);
            participants = [.. open.Stages.Last(s => s.Stage == "masked_input").Participants.Order(StringComparer.Ordinal)];
            Assert.Equal(sites, participants);
            byte[] model = store.LoadModel(0)!;
            store.CompleteRoundWithModel(1, 1, model, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(model)), participants);
        }

        Assert.Empty(SiteCharges(AggregatorState.PrivacyLedgerPath(killed)));
        if (chargedBeforeKill)
        {
            Assert.Equal(siteCharge.EpsilonAfter, FederationBudget.Open(AggregatorState.PrivacyLedgerPath(killed), TestFederation.FederationName)
                .Record(1, ((Privacy.ZcdpMechanism)siteCharge.Mechanism).Rho, 1e-5), 9);
        }

        string killedAudit = Path.Combine(AggregatorState.AuditDirectory(killed), AuditLog.LogFileName);
        for (int restart = 1; restart <= 2; restart++)
        {
            await fed.StartAggregatorAsync(killed);
            DateTime giveUp = DateTime.UtcNow.AddSeconds(30);
            while (!File.ReadAllText(killedAudit).Contains($"\"type\":\"{AuditEvents.RoundCompleted}\"", StringComparison.Ordinal) && DateTime.UtcNow < giveUp)
            {
                await Task.Delay(50);
            }

            await Task.Delay(500);
            await fed.StopAggregatorAsync();
            Privacy.LedgerEntry charge = Assert.Single(SiteCharges(AggregatorState.PrivacyLedgerPath(killed)));
            Assert.Equal(1, charge.Round);
            Assert.Equal(((Privacy.ZcdpMechanism)siteCharge.Mechanism).Rho, ((Privacy.ZcdpMechanism)charge.Mechanism).Rho, 12);
            Assert.Equal(siteCharge.EpsilonAfter, charge.EpsilonAfter, 9);
            string[] lines = File.ReadAllLines(killedAudit);
            string produced = Assert.Single(lines, l => l.Contains($"\"type\":\"{AuditEvents.AggregateProduced}\"", StringComparison.Ordinal));
            Assert.Contains("logged when the aggregator restarted", produced, StringComparison.Ordinal);
            Assert.Contains("\"model_version\":1", produced, StringComparison.Ordinal);
            string spent = Assert.Single(lines, l => l.Contains($"\"type\":\"{AuditEvents.PrivacySpent}\"", StringComparison.Ordinal));
            Assert.Contains(chargedBeforeKill ? "logged when the aggregator restarted" : "charged when the aggregator restarted", spent, StringComparison.Ordinal);
            Assert.Single(lines, l => l.Contains($"\"type\":\"{AuditEvents.RoundCompleted}\"", StringComparison.Ordinal));
        }

        AuditReportResult report = AuditReport.Create([AggregatorState.AuditDirectory(killed), .. sites.Select(s => AgentState.AuditDirectory(fed.AgentDataDirectory(s)))]);
        Assert.True(report.Passed, report.Verdict + "\n" + string.Join("\n", report.Problems));

        static IEnumerable<Privacy.LedgerEntry> SiteCharges(string path) =>
            Privacy.PrivacyLedger.OpenReadOnly(path).Entries.Where(e => e.Guarantee == Privacy.Guarantee.Site);
    }

    [Fact]
    public async Task Agents_NetworkDropsResetsAnd503s_RetriedNothingDoubleCountedModelIsWeightedAverage()
    {
        string[] sites = ["site-a", "site-b", "site-c"];
        long[] examples = [300, 700, 2000];
        // No deadline has to pass here: long ones, so that retries on a loaded machine are not cut off by a stage deadline.
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), sites, new Dictionary<string, string>
        {
            ["StageTimeoutSeconds"] = "60",
            ["TrainingTimeoutSeconds"] = "60",
        });
        await fed.StartAggregatorAsync();
        var handlers = new List<FaultInjectingHandler>();
        for (int i = 0; i < sites.Length; i++)
        {
            fed.StartAgent(sites[i], examples[i], wrap: inner =>
            {
                var h = new FaultInjectingHandler(inner);
                lock (handlers)
                {
                    handlers.Add(h);
                }

                return h;
            });
        }

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));

        Assert.True(handlers.Sum(h => h.DroppedBefore) > 0 && handlers.Sum(h => h.DroppedAfter) > 0 && handlers.Sum(h => h.ServiceUnavailable) > 0);
        IReadOnlyList<RoundRecord> rounds = fed.State.Store.ListRounds();
        Assert.True(rounds.Count == 1, string.Join("; ", fed.Reports.Select(r => $"{r.Site} round {r.Round}: {r.Outcome}")) + " | " + string.Join("; ", rounds.Select(r => r.AbortReason)));
        RoundRecord round = rounds[0];
        Assert.Equal(RoundStatus.Completed, round.Status);
        Assert.Equal(sites, round.Participants.Order());

        // Each masked input was counted exactly once.
        string[] audit = File.ReadAllLines(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName));
        foreach (string site in sites)
        {
            Assert.Single(audit, l => l.Contains(AuditEvents.MaskedInputReceived, StringComparison.Ordinal) && l.Contains($"\"{site}\"", StringComparison.Ordinal));
        }

        // The fused model is exactly the weighted average of the three updates.
        int d = TestFederation.Parameters;
        var sum = new uint[fed.Inputs[(sites[0], 1)].Length]; // d + weight slot + federated-evaluation slots
        foreach (string site in sites)
        {
            ModularVector.Add(sum, fed.Inputs[(site, 1)], 32);
        }

        double scale;
        using (JsonDocument doc = JsonDocument.Parse(round.ConfigurationJson))
        {
            scale = doc.RootElement.GetProperty("scale").GetDouble();
        }

        long totalWeight = ModularVector.ToSigned(sum[d], 32);
        Assert.Equal(examples.Sum(e => Math.Min(e, 1000)), totalWeight); // WeightCap = 1000
        float[] model = ModelState.FromBytes(fed.State.Store.LoadModel(1)!, "v1");
        for (int i = 0; i < d; i++)
        {
            double avg = ModularVector.ToSigned(sum[i], 32) / scale / (totalWeight / 1000.0);
            Assert.InRange(model[i] - (fed.InitialModel[i] + avg), -1e-5, 1e-5);
        }

        AssertLogsVerify(fed, sites);
    }

    [Fact]
    public async Task Aggregator_DataDirectoryUnwritable_ClearErrorAtStartAndNoStateDamaged()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b"]);
        // A file where the data directory should be: creating it fails even for root.
        string blocked = Path.Combine(_dir, "blocked");
        await File.WriteAllTextAsync(blocked, "not a directory");
        Exception ex = await Assert.ThrowsAnyAsync<Exception>(() => fed.StartAggregatorAsync(Path.Combine(blocked, "data")));
        Assert.True(ex is IOException or UnauthorizedAccessException, ex.ToString());
        Assert.Contains("blocked", ex.Message, StringComparison.Ordinal);
        Assert.Equal("not a directory", await File.ReadAllTextAsync(blocked));

        // The audit directory is blocked by a file: start-up fails, the store it created stays consistent.
        Directory.CreateDirectory(fed.AggregatorDataDirectory);
        string auditDir = AggregatorState.AuditDirectory(fed.AggregatorDataDirectory);
        await File.WriteAllTextAsync(auditDir, "in the way");
        Exception audit = await Assert.ThrowsAnyAsync<Exception>(() => fed.StartAggregatorAsync());
        Assert.True(audit is IOException or UnauthorizedAccessException or InvalidDataException, audit.ToString());
        Assert.Contains("audit", audit.Message, StringComparison.Ordinal);

        // Remove the obstacle: the aggregator starts on the same data directory and its state verifies.
        File.Delete(auditDir);
        await fed.StartAggregatorAsync();
        Assert.Empty(fed.State.Store.QuickCheck());
        Assert.NotNull(fed.State.Store.LoadModel(0));
        await fed.StopAggregatorAsync();
        Assert.True(AuditVerifier.Verify(auditDir).Ok);
    }

    /// <summary>The sites of <see cref="StartRoundHeldAtUnmaskingAsync"/>.</summary>
    private static readonly string[] HeldAtUnmaskingSites = ["site-a", "site-b", "site-c"];

    /// <summary>
    /// t = 2 of 3: site-a reveals its shares (charging its site-level ledger), sites b and c go silent before the
    /// unmasking, so round 1 sits in its unmasking stage (60 s timeout) with the sum possibly within reach. Returns once
    /// site-a's unmasking response is audited and nothing more is being written.
    /// </summary>
    private async Task<TestFederation> StartRoundHeldAtUnmaskingAsync()
    {
        TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), HeldAtUnmaskingSites, new Dictionary<string, string>
        {
            ["Threshold"] = "2",
            ["StageTimeoutSeconds"] = "60",
            ["TrainingTimeoutSeconds"] = "30",
        });
        await fed.StartAggregatorAsync();
        foreach ((string site, int i) in HeldAtUnmaskingSites.Select((s, i) => (s, i)))
        {
            fed.StartAgent(site, 100 * (i + 1), site == "site-a" ? null : new DropoutHook(1, ProtocolStage.Unmasking));
        }

        string auditPath = Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName);
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(90)))
        {
            while (!File.ReadAllText(auditPath).Contains($"\"type\":\"{AuditEvents.UnmaskResponse}\"", StringComparison.Ordinal))
            {
                await Task.Delay(50, wait.Token);
            }
        }

        await Task.Delay(500); // the unmask call's audit line is written before its reply: nothing else is written while the stage waits
        return fed;
    }

    /// <summary>Copies a data directory as a killed process leaves it: every file but SQLite's shared-memory index and lock files.</summary>
    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from))
        {
            string name = Path.GetFileName(file);
            if (!name.EndsWith("-shm", StringComparison.Ordinal) && name != ".lock")
            {
                using var source = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using FileStream target = File.Create(Path.Combine(to, name));
                source.CopyTo(target);
            }
        }

        foreach (string directory in Directory.GetDirectories(from))
        {
            CopyDirectory(directory, Path.Combine(to, Path.GetFileName(directory)));
        }
    }

    private static void AssertLogsVerify(TestFederation fed, IEnumerable<string> sites)
    {
        AuditVerification aggregator = AuditVerifier.Verify(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory));
        Assert.True(aggregator.Ok, aggregator.FirstProblem);
        foreach (string site in sites)
        {
            AuditVerification agent = AuditVerifier.Verify(AgentState.AuditDirectory(fed.AgentDataDirectory(site)));
            Assert.True(agent.Ok, agent.FirstProblem);
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
