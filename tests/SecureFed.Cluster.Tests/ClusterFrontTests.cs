using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Cluster.Grains;
using SecureFed.Protocol;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// Agents over mTLS gRPC into the aggregator cluster (docs/cluster.md §6): three <c>securefed aggregator</c> silo
/// processes on 127.0.0.1 and PostgreSQL, one of them the coordinator silo with Kestrel, the round coordinator, model,
/// privacy ledger and signed audit log; the others host slices only.
/// </summary>
public sealed class ClusterFrontTests : IClassFixture<PostgresServer>, IDisposable
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(4);
    private static readonly string[] Sites = ["site-a", "site-b", "site-c", "site-d"];
    private readonly PostgresServer _postgres;
    private readonly ITestOutputHelper _output;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-front-").FullName;

    public ClusterFrontTests(PostgresServer postgres, ITestOutputHelper output)
    {
        _postgres = postgres;
        _output = output;
    }

    [SkippableFact]
    public async Task Rounds_AgentsOverMtlsIntoThreeSiloCluster_ModelsEqualSingleProcessBitForBit()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string federation = "front-equal";
        const int rounds = 2;
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), federation, Sites);

        // Arrange, reference: the single-process aggregator in this process, the same agents, the same seeded randomness.
        (List<byte[]> singleModels, Dictionary<(string, long), uint[]> singleInputs) = await RunSingleProcessAsync(fed, federation, rounds);

        // Act: the same federation through three silo processes, the third the coordinator.
        string clusterData = Path.Combine(_dir, "cluster-aggregator");
        int port = SiloProcess.FreePort();
        using Silos silos = await StartClusterAsync(federation, await CreateDatabaseAsync("front_equal"), fed.AggregatorSettings(clusterData, port, rounds));
        fed.StartAgents(new Uri($"https://127.0.0.1:{port}"), "cluster-agents");
        await fed.AgentsFinishedAsync(RunTimeout);
        int exit = await silos.Coordinator.WaitForExitAsync(TimeSpan.FromSeconds(60));
        _output.WriteLine(silos.Coordinator.Output);
        Assert.Equal(0, exit);

        // Assert: each site's encoded input is the same in both runs (the masks differ), so the sums and models must be equal.
        Assert.Equal(Sites.Length * rounds, singleInputs.Count);
        Assert.Equal(singleInputs.Count, fed.Inputs.Count);
        foreach (KeyValuePair<(string, long), uint[]> input in singleInputs)
        {
            Assert.Equal(input.Value, fed.Inputs[input.Key]);
        }

        using (AggregatorState state = OpenStore(fed, clusterData))
        {
            IReadOnlyList<RoundRecord> records = state.Store.ListRounds();
            Assert.Equal(rounds, records.Count);
            Assert.All(records, r => Assert.Equal(RoundStatus.Completed, r.Status));
            for (int v = 1; v <= rounds; v++)
            {
                byte[] model = state.Store.LoadModel(v) ?? throw new InvalidOperationException($"the cluster has no model v{v}");
                Assert.Equal(singleModels[v - 1], model);
            }
        }

        Assert.NotEqual(ModelState.ToBytes(fed.InitialModel), singleModels[0]);
        AssertAuditLogsVerify(fed, clusterData);

        // The sums were made by the cluster's grains: its ledger (PostgreSQL) has both rounds, completed, by all four sites.
        LedgerEntry[] ledger = await LedgerAsync(silos.SlicesOnly, federation, fed.Provisioned.AggregatorKitDirectory);
        Assert.Equal([1L, 2L], ledger.Select(e => e.Round).Order());
        Assert.All(ledger, e =>
        {
            Assert.True(e.Completed);
            Assert.Equal(Sites, e.Contributors);
        });
    }

    [SkippableFact]
    public async Task Rounds_AgentsUploadBySliceToEachSilo_ModelsEqualSingleProcessAndCoordinatorGetsOnlyItsSlice()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string federation = "front-slices";
        const int rounds = 2;
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), federation, Sites);
        (List<byte[]> singleModels, Dictionary<(string, long), uint[]> singleInputs) = await RunSingleProcessAsync(fed, federation, rounds);

        // Act: three silo processes, each serving agents the slice it hosts (protocol version 4). site-a is a version-3
        // agent (whole vector to the coordinator); site-b's first endpoint is dead, so it must fail over to the second.
        string clusterData = Path.Combine(_dir, "cluster-aggregator");
        int port = SiloProcess.FreePort();
        var coordinator = new Uri($"https://127.0.0.1:{port}");
        var dead = new Uri($"https://127.0.0.1:{SiloProcess.FreePort()}");
        using Silos silos = await StartClusterAsync(federation, await CreateDatabaseAsync("front_slices"), fed.AggregatorSettings(clusterData, port, rounds),
            sliceKit: fed.Provisioned.AggregatorKitDirectory);
        var wire = new System.Collections.Concurrent.ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var uploadCalls = new System.Collections.Concurrent.ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        fed.StartAgents(coordinator, "cluster-agents", handler => new UploadBytesCounter(handler, wire, uploadCalls), site => site switch
        {
            "site-a" => new AgentSetup([coordinator], SpeaksProtocolVersion: 3),
            "site-b" => new AgentSetup([dead, coordinator], AgentRunner.SliceUploadVersion),
            _ => null,
        });
        await fed.AgentsFinishedAsync(RunTimeout);
        int exit = await silos.Coordinator.WaitForExitAsync(TimeSpan.FromSeconds(60));
        _output.WriteLine(silos.Coordinator.Output);
        Assert.Equal(0, exit);

        // Assert: the same encoded inputs, the same models, bit for bit; every site completed both rounds.
        Assert.Equal(singleInputs.Count, fed.Inputs.Count);
        foreach (KeyValuePair<(string, long), uint[]> input in singleInputs)
        {
            Assert.Equal(input.Value, fed.Inputs[input.Key]);
        }

        using (AggregatorState state = OpenStore(fed, clusterData))
        {
            Assert.All(state.Store.ListRounds(), r => Assert.Equal(RoundStatus.Completed, r.Status));
            for (int v = 1; v <= rounds; v++)
            {
                Assert.Equal(singleModels[v - 1], state.Store.LoadModel(v));
            }
        }

        foreach (string site in Sites)
        {
            Assert.Equal(rounds, fed.Reports.Count(r => r.Site == site && r.Completed));
        }

        AssertAuditLogsVerify(fed, clusterData);

        // The coordinator's own record of the masked-input words it took: from the version-4 sites, one slice each per round,
        // always the same slice (the one it hosts), never a word of the two others; from site-a the whole vector.
        int m = fed.Inputs[("site-a", 1)].Length;
        List<AuditLine> audit = AuditLine.Read(AggregatorState.AuditDirectory(clusterData));
        List<AuditLine> sliceReceipts = [.. audit.Where(l => l.Type == AuditEvents.MaskedInputSliceReceived)];
        long hosted = Assert.Single(sliceReceipts.Select(l => l.Number("slice")).Distinct());
        long hostedWords = Math.Min(1024, m - (hosted * 1024));
        Assert.Equal(3 * rounds, sliceReceipts.Count);
        Assert.All(sliceReceipts, l =>
        {
            Assert.NotEqual("site-a", l.Text("site"));
            Assert.Equal(4 * hostedWords, l.Number("bytes"));
        });
        long fromSlicedSites = sliceReceipts.Sum(l => l.Number("bytes"));
        _output.WriteLine($"coordinator hosts slice {hosted}: took {fromSlicedSites} bytes of the version-4 sites' masked inputs ({3 * rounds} inputs of {4L * m} bytes)");
        Assert.True(fromSlicedSites * 2 < 3L * rounds * 4 * m, "the coordinator took more than a third of the sliced inputs");

        // Measured on the wire (the agents' upload request bytes per endpoint): each slice silo received the version-4 sites'
        // words of its own slice only; the coordinator its own slice of those plus site-a's whole vectors.
        foreach ((string endpoint, long sent) in wire)
        {
            _output.WriteLine($"UploadMaskedInput bytes sent to {endpoint}: {sent}");
        }

        long overhead = 4096; // per upload: header, digest, field tags and gRPC prefixes (measured well below this)
        // A retried upload (a transient failure on a loaded machine) is a second call that sent at most one whole vector
        // again: the upper bounds allow exactly that much per extra call, and no more.
        long retryAllowance = (4L * m) + overhead;
        long toCoordinator = wire.GetValueOrDefault(coordinator.Authority);
        long wholeFromSiteA = rounds * 4L * m;
        long extraToCoordinator = Math.Max(0, uploadCalls.GetValueOrDefault(coordinator.Authority) - (rounds + (3 * rounds)));
        Assert.InRange(toCoordinator, wholeFromSiteA + (3 * rounds * 4 * hostedWords), wholeFromSiteA + (3 * rounds * 4 * hostedWords) + ((rounds + (3 * rounds)) * overhead) + (extraToCoordinator * retryAllowance));
        Assert.Equal(3, wire.Count); // the coordinator and the two slice silos; nothing went to the dead endpoint
        long toSliceSilos = wire.Where(e => e.Key != coordinator.Authority).Sum(e => e.Value);
        long extraToSliceSilos = Math.Max(0, uploadCalls.Where(e => e.Key != coordinator.Authority).Sum(e => e.Value) - (2 * 3 * rounds));
        _output.WriteLine($"retried uploads: {extraToCoordinator} to the coordinator, {extraToSliceSilos} to the slice silos");
        Assert.InRange(toSliceSilos, 3 * rounds * 4 * (m - hostedWords), (3 * rounds * 4 * (m - hostedWords)) + (2 * 3 * rounds * overhead) + (extraToSliceSilos * retryAllowance));

        // Its masked_input.received: whole (sha256) for site-a only; for the others every slice's digest, as the agent logged them.
        List<AuditLine> received = [.. audit.Where(l => l.Type == AuditEvents.MaskedInputReceived)];
        Assert.Equal(Sites.Length * rounds, received.Count);
        Assert.All(received.Where(l => l.Text("site") == "site-a"), l => Assert.Equal(64, l.Text("sha256").Length));
        foreach (AuditLine line in received.Where(l => l.Text("site") != "site-a"))
        {
            string[] digests = line.List("slices_sha256");
            Assert.Equal(3, digests.Length);
            AuditLine receipt = Assert.Single(sliceReceipts, r => r.Text("site") == line.Text("site") && r.Number("round") == line.Number("round"));
            Assert.Equal(receipt.Text("sha256"), digests[hosted]);
            string agentLog = fed.AgentAuditDirectories.Single(d => d.Contains(Path.Combine("cluster-agents", line.Text("site")), StringComparison.Ordinal));
            AuditLine sent = Assert.Single(AuditLine.Read(agentLog), l => l.Type == AuditEvents.MessageSent && l.Text("message_type") == AuditEvents.MaskedInputMessageType
                && l.Number("round") == line.Number("round"));
            Assert.Equal(digests, sent.List("slices_sha256"));
        }

        // The auditor's cross-check pairs every receipt with the agent's record of sending it (slices by their digests).
        AuditReportResult report = AuditReport.Create([AggregatorState.AuditDirectory(clusterData), .. fed.AgentAuditDirectories]);
        Assert.Equal(0, report.CrossCheckMismatches);
        Assert.Equal(rounds, report.RoundsCompleted);

        LedgerEntry[] ledger = await LedgerAsync(silos.SlicesOnly, federation, fed.Provisioned.AggregatorKitDirectory);
        Assert.Equal([1L, 2L], ledger.Select(e => e.Round).Order());
        Assert.All(ledger, e => Assert.Equal(Sites, e.Contributors));
    }

    [SkippableFact]
    public async Task Rounds_AgentsGivenOnlyASliceSilo_ControlCallsForwardedModelsEqualSingleProcessBitForBit()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string federation = "front-forward";
        const int rounds = 2;
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), federation, Sites);
        // Every site scores (federated evaluation): its declaration (ConsistencyRequest.scored) goes through the front too.
        fed.DevCounts = site => new EvaluationCounts(new EntityCounts(10 + site[^1], 3, 4), new Dictionary<string, EntityCounts>(StringComparer.Ordinal));
        (List<byte[]> singleModels, Dictionary<(string, long), uint[]> singleInputs) = await RunSingleProcessAsync(fed, federation, rounds);

        // Act: every agent knows one endpoint only, a silo that is not the coordinator (every silo a front). site-a is a
        // version-3 agent: its whole vectors go through that silo to the coordinator, chunk by chunk.
        string clusterData = Path.Combine(_dir, "cluster-aggregator");
        int port = SiloProcess.FreePort();
        var coordinator = new Uri($"https://127.0.0.1:{port}");
        using Silos silos = await StartClusterAsync(federation, await CreateDatabaseAsync("front_forward"), fed.AggregatorSettings(clusterData, port, rounds),
            sliceKit: fed.Provisioned.AggregatorKitDirectory);
        Uri front = AgentEndpoint(silos.SlicesOnly[0]);
        var calls = new System.Collections.Concurrent.ConcurrentDictionary<(string Authority, string Method), long>();
        fed.StartAgents(front, "cluster-agents", handler => new CallCounter(handler, calls),
            site => new AgentSetup([front], site == "site-a" ? 3 : AgentRunner.SliceUploadVersion));
        await fed.AgentsFinishedAsync(RunTimeout);
        int exit = await silos.Coordinator.WaitForExitAsync(TimeSpan.FromSeconds(60));
        _output.WriteLine(silos.Coordinator.Output);
        Assert.Equal(0, exit);
        foreach (((string authority, string method), long n) in calls.OrderBy(c => c.Key.Authority).ThenBy(c => c.Key.Method))
        {
            _output.WriteLine($"{authority} {method}: {n}");
        }

        // Assert: the same encoded inputs and models, bit for bit; every site completed both rounds.
        Assert.Equal(singleInputs.Count, fed.Inputs.Count);
        foreach (KeyValuePair<(string, long), uint[]> input in singleInputs)
        {
            Assert.Equal(input.Value, fed.Inputs[input.Key]);
        }

        using (AggregatorState state = OpenStore(fed, clusterData))
        {
            Assert.Equal(rounds, state.Store.ListRounds().Count);
            Assert.All(state.Store.ListRounds(), r => Assert.Equal(RoundStatus.Completed, r.Status));
            for (int v = 1; v <= rounds; v++)
            {
                Assert.Equal(singleModels[v - 1], state.Store.LoadModel(v));
            }
        }

        foreach (string site in Sites)
        {
            Assert.Equal(rounds, fed.Reports.Count(r => r.Site == site && r.Completed));
        }

        AssertAuditLogsVerify(fed, clusterData);

        // Every control call and download went to the front; the coordinator saw agents only for the slice it hosts (the
        // round announcement names its endpoint for that slice, protocol version 4).
        Assert.All(calls.Keys.Where(c => c.Authority == coordinator.Authority), c => Assert.Equal("UploadMaskedInput", c.Method));
        foreach (string method in new[] { "AwaitRound", "AdvertiseKeys", "AwaitAdvertisements", "ShareKeys", "AwaitShares", "AwaitSurvivors", "SignSurvivors", "AwaitUnmaskRequest", "Unmask", "AwaitRoundOutcome", "DownloadModel" })
        {
            Assert.True(calls.ContainsKey((front.Authority, method)), $"expected agents to call {method} on the front {front.Authority}");
        }

        // The coordinator authenticated the forwarded calls as the sites: each site's receipts are in its audit log, and
        // site-a's whole vectors (forwarded by the front) were received whole.
        List<AuditLine> audit = AuditLine.Read(AggregatorState.AuditDirectory(clusterData));
        foreach (string site in Sites)
        {
            Assert.Equal(rounds, audit.Count(l => l.Type == AuditEvents.KeysReceived && l.Text("site") == site));
        }

        Assert.Equal(rounds, audit.Count(l => l.Type == AuditEvents.MaskedInputReceived && l.Text("site") == "site-a" && l.Text("sha256").Length == 64));

        // The federation's score was published each round: all four sites declared through the front that they scored,
        // matching the summed flag, and the counts are the sum of theirs ('a'..'d' + 10 true positives each).
        long truePositives = Sites.Sum(site => 10L + site[^1]);
        List<AuditLine> scores = [.. audit.Where(l => l.Type == AuditEvents.FederatedEvaluation)];
        Assert.Equal(rounds, scores.Count);
        Assert.All(scores, l =>
        {
            Assert.Equal("", l.Text("withheld"));
            Assert.Equal(Sites.Length, l.Number("evaluators"));
            Assert.Equal(Sites.Order(StringComparer.Ordinal), l.List("declared_scored").Order(StringComparer.Ordinal));
            Assert.Equal((truePositives, 3L * Sites.Length, 4L * Sites.Length), (l.Number("tp"), l.Number("fp"), l.Number("fn")));
        });

        // Each receipt of a forwarded message names the silo that vouched for the site (via): the front the agents used.
        string frontSilo = $"127.0.0.1:{silos.SlicesOnly[0].SiloPort}@";
        List<AuditLine> receipts = [.. audit.Where(l => l.Type is AuditEvents.KeysReceived or AuditEvents.UnmaskResponse
            || (l.Type == AuditEvents.MaskedInputReceived && l.Text("site") == "site-a"))];
        Assert.Equal(rounds * (Sites.Length + 1), receipts.Count(l => l.Type != AuditEvents.UnmaskResponse));
        Assert.All(receipts, l => Assert.StartsWith(frontSilo, l.Text("via"), StringComparison.Ordinal));
    }

    /// <param name="bySlice">The slice silos serve agents too (protocol version 4: the killed silo is one agents upload to).</param>
    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Rounds_NonCoordinatorSiloKilledMidMaskedInput_AbortsWithReasonNextRoundCompletes(bool bySlice)
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        string federation = bySlice ? "front-kill-sliced" : "front-kill";
        const int rounds = 2;
        await using var fed = new FrontFederation(Path.Combine(_dir, "fed"), federation, Sites);
        string clusterData = Path.Combine(_dir, "cluster-aggregator");
        int port = SiloProcess.FreePort();
        using Silos silos = await StartClusterAsync(federation, await CreateDatabaseAsync(bySlice ? "front_kill_sliced" : "front_kill"), fed.AggregatorSettings(clusterData, port, rounds),
            sliceKit: bySlice ? fed.Provisioned.AggregatorKitDirectory : null);

        // The first upload after round 1 completed kills a silo that hosts slices only (every silo hosts one of the 3 slices).
        UploadHook.Reset();
        SiloProcess victim = silos.SlicesOnly[0];
        fed.StartAgents(new Uri($"https://127.0.0.1:{port}"), "cluster-agents",
            handler => new UploadHook(handler, () => fed.Reports.Any(r => r.Round == 1 && r.Completed), () =>
            {
                _output.WriteLine($"killing silo {victim.SiloPort} before a masked-input upload");
                victim.Kill();
            }));
        await fed.AgentsFinishedAsync(RunTimeout);
        int exit = await silos.Coordinator.WaitForExitAsync(TimeSpan.FromSeconds(60));
        _output.WriteLine(silos.Coordinator.Output);
        Assert.True(exit == 0, $"expected the coordinator to exit 0 once {rounds} rounds completed; it exited {exit}");

        IReadOnlyList<RoundRecord> records;
        using (AggregatorState state = OpenStore(fed, clusterData))
        {
            records = state.Store.ListRounds();
            foreach (RoundRecord r in records)
            {
                _output.WriteLine($"round {r.Round}: {r.Status} {r.AbortReason}");
            }

            // Round 1 completed before the kill; at least one attempt aborted with a reason (round 2 cannot complete: the victim
            // hosts one of its slices, placed before the kill); the federation's second model came after it.
            string listed = Describe(records);
            Assert.True(records.Count > 0 && records[0].Status == RoundStatus.Completed, $"expected round 1 completed before the kill; the store lists {listed}");
            RoundRecord? aborted = records.FirstOrDefault(r => r.Status == RoundStatus.Aborted);
            Assert.True(aborted is not null, $"expected an aborted attempt after the kill; the store lists {listed}");
            Assert.False(string.IsNullOrWhiteSpace(aborted.AbortReason), $"expected aborted round {aborted.Round} to carry a reason; the store lists {listed}");
            int completed = records.Count(r => r.Status == RoundStatus.Completed);
            Assert.True(completed == rounds, $"expected {rounds} completed rounds; found {completed}: {listed}");
            long lastCompleted = records.Last(r => r.Status == RoundStatus.Completed).Round;
            Assert.True(lastCompleted > aborted.Round, $"expected a round to complete after aborted round {aborted.Round}; the last completed is round {lastCompleted}: {listed}");
            for (int v = 1; v <= rounds; v++)
            {
                Assert.True(state.Store.LoadModel(v) is not null, $"expected model v{v} in the coordinator's store; it is missing ({listed})");
            }
        }

        int round1 = fed.Reports.Count(r => r.Round == 1 && r.Completed);
        Assert.True(round1 == Sites.Length, $"expected all {Sites.Length} agents to report round 1 completed; {round1} did. Reports: "
            + string.Join("; ", fed.Reports.OrderBy(r => r.Round).ThenBy(r => r.Site, StringComparer.Ordinal).Select(r => $"{r.Site} round {r.Round}: {r.Outcome}")));
        AssertAuditLogsVerify(fed, clusterData);
        if (bySlice)
        {
            // The inputs went by slice (version 4) before and after the kill (every silo left serves agents): each contributor
            // of a completed round has a masked_input.received listing its slices' digests.
            List<AuditLine> received = [.. AuditLine.Read(AggregatorState.AuditDirectory(clusterData)).Where(l => l.Type == AuditEvents.MaskedInputReceived)];
            foreach (RoundRecord r in records.Where(r => r.Status == RoundStatus.Completed))
            {
                AuditLine[] receipts = [.. received.Where(l => l.Number("round") == r.Round)];
                string[] unsliced = [.. r.Participants.Where(site => !receipts.Any(l => l.Text("site") == site && l.List("slices_sha256").Length > 0))];
                Assert.True(r.Participants.Count > 0 && unsliced.Length == 0,
                    $"expected every contributor of completed round {r.Round} [{string.Join(", ", r.Participants)}] to have a masked_input.received with slice digests; "
                    + $"missing for [{string.Join(", ", unsliced)}]; the round's receipts: [{string.Join("; ", receipts.Select(l => $"{l.Text("site")}: {l.List("slices_sha256").Length} slice digests"))}]");
            }
        }

        // The cluster's ledger (PostgreSQL, read through the silo left): nothing completed is lost and nothing is recorded twice.
        // Every completed round of the coordinator's store is there, completed, with the same contributors; every attempt
        // that was opened on the cluster and aborted is there as aborted with a reason. (An attempt whose opening already
        // failed never reached the cluster's round; it is only in the coordinator's store.)
        LedgerEntry[] ledger = await LedgerAsync([silos.SlicesOnly[1]], federation, fed.Provisioned.AggregatorKitDirectory);
        string inLedger = "[" + string.Join("; ", ledger.Select(e => $"round {e.Round}: {(e.Completed ? "completed by " + string.Join(",", e.Contributors) : "aborted: " + e.AbortReason)}")) + "]";
        _output.WriteLine($"ledger: {inLedger}");
        long[] twice = [.. ledger.GroupBy(e => e.Round).Where(g => g.Count() > 1).Select(g => g.Key)];
        Assert.True(twice.Length == 0, $"expected each round once in the ledger; rounds [{string.Join(", ", twice)}] are there more than once: {inLedger}");
        foreach (RoundRecord r in records)
        {
            LedgerEntry? entry = ledger.SingleOrDefault(e => e.Round == r.Round);
            if (r.Status == RoundStatus.Completed)
            {
                Assert.True(entry is { Completed: true } && entry.Contributors.Order(StringComparer.Ordinal).SequenceEqual(r.Participants.Order(StringComparer.Ordinal)),
                    $"expected completed round {r.Round} (contributors {string.Join(",", r.Participants)}) completed in the ledger with the same contributors; the ledger has {inLedger}");
            }
            else if (r.Status == RoundStatus.Aborted && r.AbortReason?.StartsWith("the round could not be opened", StringComparison.Ordinal) != true)
            {
                Assert.True(entry is { Completed: false } && !string.IsNullOrWhiteSpace(entry.AbortReason),
                    $"expected aborted round {r.Round} ({r.AbortReason}) aborted with a reason in the ledger; the ledger has {inLedger}");
            }
            else
            {
                Assert.True(entry is null or { Completed: false }, $"expected round {r.Round} ({r.Status}: {r.AbortReason}) not completed in the ledger; the ledger has {inLedger}");
            }
        }

        Assert.True(ledger.Count(e => e.Completed) == rounds, $"expected {rounds} completed rounds in the ledger; it has {inLedger}");
        Assert.True(ledger.Any(e => !e.Completed && !string.IsNullOrWhiteSpace(e.AbortReason)), $"expected the attempt aborted by the kill in the ledger with a reason; it has {inLedger}");
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
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The agent endpoint a silo with AgentListen printed when its Kestrel bound it.</summary>
    internal static Uri AgentEndpoint(SiloProcess silo)
    {
        System.Text.RegularExpressions.Match match = System.Text.RegularExpressions.Regex.Match(silo.Output, @"slice uploads \(protocol version 4\) served on (https://\S+)");
        Assert.True(match.Success, "the silo printed no agent endpoint:\n" + silo.Output);
        return new Uri(match.Groups[1].Value);
    }

    /// <summary>The coordinator's round records on one line (for assertion messages).</summary>
    private static string Describe(IReadOnlyList<RoundRecord> records)
        => "[" + string.Join("; ", records.Select(r => $"round {r.Round}: {r.Status}{(r.AbortReason is null ? "" : " (" + r.AbortReason + ")")}")) + "]";

    private static void AssertAuditLogsVerify(FrontFederation fed, string aggregatorData)
    {
        AuditVerification aggregator = AuditVerifier.Verify(AggregatorState.AuditDirectory(aggregatorData));
        Assert.True(aggregator.Ok, "expected the aggregator's audit log to verify; problems: " + string.Join("; ", aggregator.Problems));
        foreach (string directory in fed.AgentAuditDirectories)
        {
            AuditVerification agent = AuditVerifier.Verify(directory);
            Assert.True(agent.Ok, $"expected the agent audit log {directory} to verify; problems: " + string.Join("; ", agent.Problems));
        }
    }

    private static async Task<LedgerEntry[]> LedgerAsync(IReadOnlyList<SiloProcess> silos, string federation, string aggregatorKit)
    {
        using IHost client = await MultiProcessClusterTests.StartClientAsync(silos, federation, aggregatorKit);
        LedgerEntry[] entries = await client.Services.GetRequiredService<IClusterClient>().GetGrain<ILedgerGrain>(federation).EntriesAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await client.StopAsync().WaitAsync(RoundScript.Timeout);
        return entries;
    }

    private static AggregatorState OpenStore(FrontFederation fed, string dataDirectory) => AggregatorState.Open(new AggregatorOptions
    {
        Federation = fed.Federation,
        KitDirectory = fed.Provisioned.AggregatorKitDirectory,
        DataDirectory = dataDirectory,
        InitialModel = fed.InitialModelPath,
    });

    /// <summary>The single-process aggregator in this process with the same agents: its models and each site's encoded inputs.</summary>
    private async Task<(List<byte[]> Models, Dictionary<(string, long), uint[]> Inputs)> RunSingleProcessAsync(FrontFederation fed, string federation, int rounds)
    {
        string singleData = Path.Combine(_dir, "single-aggregator");
        Dictionary<string, string?> single = FrontFederation.Flatten(fed.AggregatorSettings(singleData, SiloProcess.FreePort(), rounds));
        single["SecureFed:Federation"] = federation;
        single["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(single).Build();
        var models = new List<byte[]>();
        var inputs = new Dictionary<(string, long), uint[]>();
        WebApplication app = AggregatorHost.Build(configuration, (Func<float[]>?)null, logging => logging.SetMinimumLevel(LogLevel.Warning));
        try
        {
            await app.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
            fed.StartAgents(AggregatorHost.BoundAddress(app), "single-agents");
            await fed.AgentsFinishedAsync(RunTimeout);
            await app.Services.GetRequiredService<RoundCoordinator>().Finished.WaitAsync(RunTimeout);
            AggregatorState state = app.Services.GetRequiredService<AggregatorState>();
            for (int v = 1; v <= rounds; v++)
            {
                models.Add(state.Store.LoadModel(v) ?? throw new InvalidOperationException($"the single process has no model v{v}"));
            }

            foreach (KeyValuePair<(string, long), uint[]> input in fed.Inputs)
            {
                inputs[input.Key] = input.Value;
            }
        }
        finally
        {
            await fed.StopAgentsAsync();
            await HostStop.StopAsync(app, _output);
            await app.DisposeAsync();
        }

        Assert.True(AuditVerifier.Verify(AggregatorState.AuditDirectory(singleData)).Ok);
        Assert.Equal(fed.Sites.Count * rounds, inputs.Count);
        fed.Inputs.Clear();
        fed.Reports.Clear();
        fed.AgentAuditDirectories.Clear();
        return (models, inputs);
    }

    private async Task<Silos> StartClusterAsync(string federation, string connectionString, Dictionary<string, object> aggregator, string? sliceKit = null)
    {
        string dir = Path.Combine(_dir, "silos");
        Directory.CreateDirectory(dir);
        var silos = new Silos();
        string? agentListen = sliceKit is null ? null : "https://127.0.0.1:0";
        string kit = sliceKit ?? (string)aggregator["KitDirectory"]; // every silo has the aggregator's kit: the cluster's ports run the default mutual TLS
        try
        {
            silos.SlicesOnly.Add(await SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString, null, agentListen, kit));
            silos.SlicesOnly.Add(await SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString, null, agentListen, kit));
            silos.Coordinator = await SiloProcess.StartAsync(dir, federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connectionString, aggregator);
            return silos;
        }
        catch
        {
            silos.Dispose();
            throw;
        }
    }

    private async Task<string> CreateDatabaseAsync(string name)
    {
        await using NpgsqlDataSource server = NpgsqlDataSource.Create(_postgres.ConnectionString);
        await using (NpgsqlCommand create = server.CreateCommand($"CREATE DATABASE {name}"))
        {
            await create.ExecuteNonQueryAsync().WaitAsync(RoundScript.Timeout);
        }

        return new NpgsqlConnectionStringBuilder(_postgres.ConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>The test's silo processes: two hosting slices only, one coordinator.</summary>
    private sealed class Silos : IDisposable
    {
        public List<SiloProcess> SlicesOnly { get; } = [];

        public SiloProcess Coordinator { get; set; } = null!;

        public void Dispose()
        {
            foreach (SiloProcess silo in SlicesOnly)
            {
                silo.Dispose();
            }

            Coordinator?.Dispose();
        }
    }
}
