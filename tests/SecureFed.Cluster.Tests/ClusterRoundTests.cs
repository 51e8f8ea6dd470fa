using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.TestingHost;
using SecureFed.Cluster.Grains;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

public sealed class ClusterRoundTests : IClassFixture<ThreeSiloCluster>
{
    private readonly ThreeSiloCluster _cluster;

    public ClusterRoundTests(ThreeSiloCluster cluster)
    {
        _cluster = cluster;
    }

    [Fact]
    public void Silos_GrainLocationCache_IsSizedForTheClusterNotOrleansMillionEntryDefault()
    {
        // Orleans' default (1,000,000 entries) pre-allocates 9.3 MB in every silo; the rounds of this class run with the smaller cache.
        Assert.True(GrainDirectoryOptions.DEFAULT_CACHE_SIZE > SiloBuilderExtensions.DirectoryCacheSize);
        foreach (InProcessSiloHandle silo in _cluster.Cluster.Silos.Cast<InProcessSiloHandle>())
        {
            Assert.Equal(SiloBuilderExtensions.DirectoryCacheSize, silo.SiloHost.Services.GetRequiredService<IOptions<GrainDirectoryOptions>>().Value.CacheSize);
        }
    }

    [Theory]
    [InlineData(1, 10, 9, 32, 3)]
    [InlineData(2, 16, 8, 21, 4)]
    public async Task Round_ThreeSilosWithDropouts_SumEqualsSingleProcessBitForBit(long round, int n, int degree, int bitWidth, int slices)
    {
        const int M = 10_007;
        using var script = new RoundScript(n, seed: (int)round, round, M, bitWidth, degree);
        var cluster = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, round);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, (M + slices - 1) / slices), CancellationToken.None).WaitAsync(RoundScript.Timeout);

        string[] hosts = await Task.WhenAll(Enumerable.Range(0, slices).Select(k =>
            _cluster.Grains.GetGrain<ISliceGrain>(ClusterKeys.Slice(cluster.RoundKey, k)).SiloAsync().WaitAsync(RoundScript.Timeout)));
        Assert.Equal(3, hosts.Distinct(StringComparer.Ordinal).Count()); // the slices are spread over the three silos

        // Site 1 drops before sharing keys, 2 and 3 before their masked input (their s is rebuilt), 4 after its input.
        await script.ThroughShareKeysAsync(cluster, [1]);
        await script.SendMaskedInputsAsync(cluster, Enumerable.Range(4, n - 3));
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(cluster, [4]);

        Assert.Equal(single.Sum, clustered.Sum);
        Assert.Equal(script.ExpectedSum(Enumerable.Range(4, n - 3)), clustered.Sum);
        Assert.Equal(single.Contributors, clustered.Contributors);
        Assert.Equal([2, 3], clustered.DroppedBeforeInput);
        Assert.Equal([4], clustered.DroppedAfterInput);

        Assert.True(await cluster.RecordAsync(script.Parameters.SessionId, clustered, script.Parameters.Participants, null, CancellationToken.None));
        LedgerEntry entry = Assert.Single(await cluster.Ledger.EntriesAsync().WaitAsync(RoundScript.Timeout), e => e.Round == round);
        Assert.True(entry.Completed);
        Assert.Equal(ClusterRoundClient.SumDigest(single.Sum), entry.SumSha256);
    }

    [Fact]
    public async Task Round_FinishedBySlice_TailAndPiecesInOrderEqualSingleProcessSum()
    {
        const int M = 10_007;
        const long round = 3;
        const int n = 8;
        using var script = new RoundScript(n, seed: 3, round, M, bitWidth: 24, degree: 7);
        var cluster = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, round);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, (M + 2) / 3), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, [1]);
        await script.SendMaskedInputsAsync(cluster, Enumerable.Range(3, n - 2)); // site 2 drops before its input: its s is rebuilt
        AggregationResult single = await script.ThroughUnmaskingAsync(cluster, []);

        string? recorded = null;
        (ClusterRoundResult result, SlicedClusterSum sum) = await cluster.FinishBySliceAsync(
            (sha, _) => { recorded = sha; return Task.CompletedTask; }, CancellationToken.None, pieceWords: 1000).WaitAsync(RoundScript.Timeout);
        uint[] tail = await sum.TailAsync(6000, CancellationToken.None).WaitAsync(RoundScript.Timeout); // across slices 1 and 2
        uint[] gathered = new uint[M];
        var pieces = new List<(int Offset, int Length)>();
        await sum.ReadInOrderAsync((offset, words) =>
        {
            pieces.Add((offset, words.Length));
            words.CopyTo(gathered.AsSpan(offset));
        }, CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await sum.RecordAsync("digest", CancellationToken.None);

        Assert.Equal(M, sum.Length);
        Assert.Equal(single.Sum[6000..], tail);
        Assert.Equal(single.Sum, gathered);
        Assert.Equal(script.ExpectedSum(Enumerable.Range(3, n - 2)), gathered);
        Assert.Equal(single.Contributors, result.Contributors);
        Assert.All(pieces, p => Assert.InRange(p.Length, 1, 1000));
        Assert.Equal(0, pieces[0].Offset);
        for (int i = 1; i < pieces.Count; i++)
        {
            Assert.Equal(pieces[i - 1].Offset + pieces[i - 1].Length, pieces[i].Offset); // in order, each word once
        }

        Assert.Contains(pieces, p => p.Offset == result.Layout.Offset(1)); // no piece crosses a slice boundary
        Assert.True(sum.RecordsDigest);
        Assert.Equal("digest", recorded);
    }

    [Fact]
    public async Task FinishBySlice_DealerSharesEncodeAnotherSecret_AbortNamesTheDealerAtFaultAsInOneProcess()
    {
        // Site 3 dealt every holder a b-share of b_3 + δ: 6 consistent shares (t = 4) of a secret that fails its commitment.
        const int M = 1_001;
        const long round = 7;
        using var script = new RoundScript(6, seed: 7, round, M, bitWidth: 24, degree: 5);
        var cluster = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, round);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, (M + 2) / 3), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);
        await script.SendMaskedInputsAsync(cluster, Enumerable.Range(1, 6));
        await script.UnmaskAsync(cluster, [], response =>
        {
            byte[] share = response.SelfMaskShares.Single(s => s.Owner == 3).Value;
            ulong y = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(share);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(share, (y + 987_654_321) % SecureFed.Crypto.Shamir.Prime);
        });
        var single = Assert.Throws<RoundAbortedException>(() => script.Single.Finish(maxDegreeOfParallelism: 1));
        var front = new SecureFed.Cluster.Front.ClusterRoundServer(cluster, script.Parameters, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        var clustered = await Assert.ThrowsAsync<RoundAbortedException>(() => front.FinishBySliceAsync(CancellationToken.None).WaitAsync(RoundScript.Timeout));

        Assert.Equal(3, single.AtFault);
        Assert.Equal(3, clustered.AtFault);
        Assert.Equal(ProtocolStage.Unmasking, clustered.Stage);
        Assert.Equal(single.Reason, clustered.Reason);
        Assert.Contains("dealt shares of another secret", clustered.Reason, StringComparison.Ordinal);
    }

    /// <summary>
    /// The coordinator's question before it stops waiting for the unmasking stage's last member, asked of the round grain
    /// through the front (<see cref="Aggregator.IRoundServer.UnmaskingShortfallAsync"/>): with t = 3 answers, one with
    /// every b-share moved, it answers as the single process does and the round stays at Unmasking, able to finish.
    /// </summary>
    [Fact]
    public async Task UnmaskingShortfall_ThresholdAnswersOneWithWrongValues_SameAnswerAsInOneProcessRoundStaysAtUnmasking()
    {
        const int M = 301;
        const long round = 29;
        using var script = new RoundScript(4, seed: 29, round, M, bitWidth: 24, degree: 3);
        var cluster = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, round);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 101), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);
        await script.SendMaskedInputsAsync(cluster, Enumerable.Range(1, 4));
        await script.UnmaskAsync(cluster, [4], response =>
        {
            if (response.Sender == 1)
            {
                foreach (RevealedShare share in response.SelfMaskShares)
                {
                    ulong y = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(share.Value);
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(share.Value, (y + 1) % SecureFed.Crypto.Shamir.Prime);
                }
            }
        });
        var front = new SecureFed.Cluster.Front.ClusterRoundServer(cluster, script.Parameters, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        string? clustered = await front.UnmaskingShortfallAsync(4, CancellationToken.None).WaitAsync(RoundScript.Timeout);

        Assert.Equal(3, script.Parameters.Threshold);
        Assert.NotNull(clustered);
        Assert.Equal(script.Single.UnmaskingShortfall(4), clustered);
        Assert.Contains("cannot be rebuilt from the 3 shares revealed by 'site-001', 'site-002', 'site-003'", clustered, StringComparison.Ordinal);
        ClusterRoundStatus status = await cluster.Round.StatusAsync().WaitAsync(RoundScript.Timeout);
        Assert.Equal(nameof(ProtocolStage.Unmasking), status.Stage);
        await cluster.Round.AbortAsync("test over").WaitAsync(RoundScript.Timeout);
    }

    [Fact]
    public async Task AcceptingCalls_CallerGivesUpWhileTheGrainTakesTheMessage_FrontAnswersAsOneProcessAndTheRoundCompletes()
    {
        // Every message goes in with a token already cancelled: as if the site reset its stream (or its deadline passed)
        // after the request was read. The round grain takes each message; the front must answer with the grain's answer,
        // as a single process does, so that the caller audits and records it (abandoned, its audit line was lost for good:
        // every retry is a duplicate).
        const long round = 37;
        using var script = new RoundScript(3, seed: 37, round, 300, bitWidth: 24, degree: 2);
        var cluster = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, round);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        var front = new Front.ClusterRoundServer(cluster, script.Parameters, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        using var gone = new CancellationTokenSource();
        await gone.CancelAsync();

        foreach (int u in new[] { 1, 2, 3 })
        {
            KeyAdvertisement ad = script.Client(u).AdvertiseKeys();
            script.Single.AcceptAdvertisement(ad);
            Assert.True(await front.AcceptAdvertisementAsync(ad, gone.Token).WaitAsync(RoundScript.Timeout));
        }

        Assert.Equal(script.Single.CloseAdvertiseKeys(), await cluster.Round.CloseAdvertiseKeysAsync().WaitAsync(RoundScript.Timeout));
        foreach (int u in new[] { 1, 2, 3 })
        {
            IReadOnlyList<EncryptedShare> shares = script.Client(u).ShareKeys(await cluster.Round.AdvertisementsForAsync(u).WaitAsync(RoundScript.Timeout));
            script.Single.AcceptShares(u, shares);
            Assert.True(await front.AcceptSharesAsync(u, shares, gone.Token).WaitAsync(RoundScript.Timeout));
        }

        Assert.Equal(script.Single.CloseShareKeys(), await cluster.Round.CloseShareKeysAsync().WaitAsync(RoundScript.Timeout));
        await script.SendMaskedInputsAsync(cluster, [1, 2, 3]);
        IReadOnlyList<int> survivors = script.Single.CloseMaskedInput();
        Assert.Equal(survivors, await cluster.Round.CloseMaskedInputAsync().WaitAsync(RoundScript.Timeout));
        foreach (int u in survivors)
        {
            ConsistencySignature signature = script.Client(u).SignSurvivors(survivors);
            script.Single.AcceptConsistencySignature(signature);
            Assert.True(await front.AcceptConsistencySignatureAsync(signature, gone.Token).WaitAsync(RoundScript.Timeout));
        }

        UnmaskRequest request = script.Single.CloseConsistency();
        Assert.Equal(request.Dropped, (await cluster.Round.CloseConsistencyAsync().WaitAsync(RoundScript.Timeout)).Dropped);
        foreach (ConsistencySignature signer in request.Signatures)
        {
            UnmaskResponse response = script.Client(signer.Sender).Unmask(request);
            script.Single.AcceptUnmaskResponse(response);
            Assert.True(await front.AcceptUnmaskResponseAsync(response, gone.Token).WaitAsync(RoundScript.Timeout));
            Assert.False(await front.AcceptUnmaskResponseAsync(response, gone.Token).WaitAsync(RoundScript.Timeout)); // the retry: a duplicate
        }

        AggregationResult clustered = await cluster.FinishAsync(CancellationToken.None).WaitAsync(RoundScript.Timeout);
        Assert.Equal(script.Single.Finish(maxDegreeOfParallelism: 1).Sum, clustered.Sum);
        Assert.Equal(script.ExpectedSum([1, 2, 3]), clustered.Sum);
    }

    [Fact]
    public async Task SendMaskedInput_WholeVectorOneSliceRefuses_RefusedWholeNoneOfItInTheSum()
    {
        // Site 2 first sends slice 0 alone (protocol version 4) with other words, then its whole vector (version 3): slice 0
        // refuses the vector ("already sent"). Slices 1 and 2 take their chunks, but the round must not hear of them: the
        // site is not committed, and its words leave the sum when the stage closes, as a single process refuses the vector.
        const int M = 300;
        const long round = 41;
        using var script = new RoundScript(3, seed: 41, round, M, bitWidth: 24, degree: 2);
        var cluster = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, round);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);
        var masked = new uint[M];
        script.Client(2).MaskInput(await cluster.Round.SharesForAsync(2).WaitAsync(RoundScript.Timeout), script.Inputs[1], masked);
        uint[] other = masked[..100];
        other[0] = (other[0] + 1) & ((1u << 24) - 1);
        Assert.True(await cluster.SendSliceAsync(2, 0, other, SliceSpillTests.Sha(other), CancellationToken.None).WaitAsync(RoundScript.Timeout));

        var ex = await Assert.ThrowsAsync<ClusterProtocolException>(() => cluster.SendMaskedInputAsync(2, masked, CancellationToken.None).WaitAsync(RoundScript.Timeout));

        Assert.Contains("already sent", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(2, (await cluster.Round.ProgressAsync().WaitAsync(RoundScript.Timeout)).Delivered);
        await script.SendMaskedInputsAsync(cluster, [1, 3]);
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(cluster, []);
        Assert.Equal([1, 3], clustered.Contributors);
        Assert.Equal(single.Sum, clustered.Sum);
        Assert.Equal(script.ExpectedSum([1, 3]), clustered.Sum);
    }

    [Fact]
    public async Task SendMaskedInput_WordNotReduced_IsRefusedNamingSiteAndWordAndNotCounted()
    {
        const int M = 300;
        using var script = new RoundScript(5, seed: 11, round: 11, M, bitWidth: 20, degree: 4);
        var cluster = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, 11);
        await cluster.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout);
        await script.ThroughShareKeysAsync(cluster, []);
        uint[] bad = new uint[M];
        bad[250] = 1u << 20;

        var ex = await Assert.ThrowsAsync<ClusterProtocolException>(() => cluster.SendMaskedInputAsync(2, bad, CancellationToken.None).WaitAsync(RoundScript.Timeout));

        Assert.Contains("index 2", ex.Message, StringComparison.Ordinal);
        Assert.Contains("word 250 is not reduced modulo 2^20", ex.Message, StringComparison.Ordinal);
        ClusterRoundStatus status = await cluster.Round.StatusAsync().WaitAsync(RoundScript.Timeout);
        Assert.Equal(nameof(ProtocolStage.MaskedInputCollection), status.Stage);
        await cluster.Round.AbortAsync("test over").WaitAsync(RoundScript.Timeout);
    }

    [Fact]
    public async Task Abort_RoundGrainLostItsState_AbortIsStillRecordedInTheLedger()
    {
        // Arrange: a round opened on the cluster by the coordinator's server side, then its round grain loses its in-memory
        // round, as when the silo hosting it fails and the grain is reactivated elsewhere (here: the grain is deactivated).
        using var script = new RoundScript(4, seed: 13, round: 13, 300, bitWidth: 32, degree: 3);
        var factory = new Front.ClusterRoundServerFactory(_cluster.Grains, 100, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        Aggregator.IRoundServer server = await factory.OpenAsync(script.Parameters, CancellationToken.None).WaitAsync(RoundScript.Timeout);
        var cluster = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, 13);
        await _cluster.Grains.GetGrain<IManagementGrain>(0).DeactivateGrain(cluster.Round.GetGrainId()).WaitAsync(RoundScript.Timeout);
        DateTime deadline = DateTime.UtcNow + RoundScript.Timeout;
        while ((await cluster.Round.ProgressAsync().WaitAsync(RoundScript.Timeout)).Stage != "Lost")
        {
            Assert.True(DateTime.UtcNow < deadline, "the deactivated round grain still holds its round");
            await Task.Delay(100);
        }

        // Act: the coordinator aborts the attempt (e.g. its status call failed with the silo).
        await server.AbortAsync("a silo failed during the masked-input stage", CancellationToken.None).WaitAsync(RoundScript.Timeout);

        // Assert: the aborted attempt is in the ledger with the reason (not silently dropped by the empty grain).
        LedgerEntry[] ledger = await cluster.Ledger.EntriesAsync().WaitAsync(RoundScript.Timeout);
        LedgerEntry? entry = ledger.SingleOrDefault(e => e.Round == 13 && e.SessionId == script.Parameters.SessionId);
        Assert.True(entry is not null, $"expected the aborted round 13 in the ledger; found rounds [{string.Join(", ", ledger.Select(e => $"{e.Round}:{(e.Completed ? "completed" : "aborted")}"))}]");
        Assert.False(entry.Completed, "round 13 was aborted, but the ledger says completed");
        Assert.Equal("a silo failed during the masked-input stage", entry.AbortReason);
    }

    [Fact]
    public async Task RecordOpenFailed_AttemptInTheLedgerAbortedWithTheReasonAndTheLeaseEpoch()
    {
        // A federation of its own: the entries carry epoch 7, after which the ledger refuses completions of lower epochs.
        using var script = new RoundScript(4, seed: 17, round: 3, 300, bitWidth: 32, degree: 3, federation: "cluster-open-failed");
        var factory = new Front.ClusterRoundServerFactory(_cluster.Grains, 100, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, localSilo: null, epoch: 7);

        await factory.RecordOpenFailedAsync(script.Parameters, "the round could not be opened: OrleansMessageRejectionException: unreachable (test)", CancellationToken.None)
            .WaitAsync(RoundScript.Timeout);

        LedgerEntry[] ledger = await _cluster.Grains.GetGrain<ILedgerGrain>("cluster-open-failed").EntriesAsync().WaitAsync(RoundScript.Timeout);
        LedgerEntry entry = Assert.Single(ledger);
        Assert.Equal((3L, script.Parameters.SessionId, false, 7L), (entry.Round, entry.SessionId, entry.Completed, entry.Epoch));
        Assert.Equal("the round could not be opened: OrleansMessageRejectionException: unreachable (test)", entry.AbortReason);
    }

    /// <summary>
    /// A round opened by the coordinator as protocol version 3 (whole masked inputs: here no silo serves agents) refuses a
    /// slice upload at the round grain, whichever silo's front asks: before, it was admitted, and a site could put its input
    /// in the sum by slices through a slice silo, with no <c>masked_input.received</c> line from the coordinator (it writes
    /// the slices' digests only for rounds that announced slices). Whole inputs still go in and sum as in one process.
    /// </summary>
    [Fact]
    public async Task SliceUpload_RoundThatTakesWholeInputs_RefusedAtTheRoundGrainWholeInputsStillSum()
    {
        using var script = new RoundScript(3, seed: 23, round: 23, 300, bitWidth: 24, degree: 2, federation: "cluster-whole-only");
        var factory = new Front.ClusterRoundServerFactory(_cluster.Grains, 100, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        Aggregator.IRoundServer server = await factory.OpenAsync(script.Parameters, CancellationToken.None).WaitAsync(RoundScript.Timeout);
        Assert.Null(server.SliceUploads); // version 3
        var cluster = new ClusterRoundClient(_cluster.Grains, "cluster-whole-only", 23);
        await script.ThroughShareKeysAsync(cluster, []);

        SliceAdmission admission = await cluster.Round.AdmitSliceAsync(23, script.Parameters.SessionId, "site-002", 0).WaitAsync(RoundScript.Timeout);

        Assert.Equal(SliceRefusalKind.WholeInputsOnly, admission.Refusal);
        Assert.Contains("index 2: round 23 takes the masked input whole (protocol version 3)", admission.Reason, StringComparison.Ordinal);
        await script.SendMaskedInputsAsync(cluster, [1, 2, 3]);
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(cluster, []);
        Assert.Equal(single.Sum, clustered.Sum);
    }

    /// <summary>
    /// The coordinator gives up an attempt after its sum was unmasked, having read only the sum's tail (a site's weight slot
    /// made the total weight W fail its check, C7): every slice of that sum is ended. Before, the round grain refused the
    /// abort (its sum was unmasked) and only the reader ends a slice, so each slice kept its part of the unmasked vector for
    /// the open round's 30 hours: a hostile site pinned one more vector in the silos' memory with every attempt it made abort.
    /// </summary>
    [Fact]
    public async Task Abort_AfterTheSumWasUnmaskedAndOnlyItsTailRead_EverySliceIsEndedNotKept()
    {
        using var script = new RoundScript(4, seed: 29, round: 29, 300, bitWidth: 20, degree: 3, federation: "cluster-abort-unmasked");
        var factory = new Front.ClusterRoundServerFactory(_cluster.Grains, 100, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var server = (Aggregator.ISlicedRoundServer)await factory.OpenAsync(script.Parameters, CancellationToken.None).WaitAsync(RoundScript.Timeout);
        var cluster = new ClusterRoundClient(_cluster.Grains, "cluster-abort-unmasked", 29);
        await script.ThroughShareKeysAsync(cluster, []);
        await script.SendMaskedInputsAsync(cluster, [1, 2, 3, 4]);
        await script.UnmaskAsync(cluster, []);
        Aggregator.SlicedRoundResult result = await server.FinishBySliceAsync(CancellationToken.None).WaitAsync(RoundScript.Timeout);
        Assert.Equal(2, (await result.Sum.TailAsync(298, CancellationToken.None).WaitAsync(RoundScript.Timeout)).Length);

        await ((Aggregator.IRoundServer)server).AbortAsync("the total weight W is out of its bound (test)", CancellationToken.None).WaitAsync(RoundScript.Timeout);

        IManagementGrain management = _cluster.Grains.GetGrain<IManagementGrain>(0);
        DateTime deadline = DateTime.UtcNow.AddSeconds(60);
        for (int k = 0; k < 3; k++)
        {
            var slice = (GrainReference)(object)cluster.Slice(k);
            while (await management.GetGrainActivationCount(slice).WaitAsync(RoundScript.Timeout) > 0)
            {
                Assert.True(DateTime.UtcNow < deadline, $"slice {k} of the given-up sum is still active 60 s after the abort");
                await Task.Delay(200);
            }
        }

        LedgerEntry entry = Assert.Single(await cluster.Ledger.EntriesAsync().WaitAsync(RoundScript.Timeout), e => e.Round == 29 && string.Equals(e.SessionId, script.Parameters.SessionId, StringComparison.Ordinal));
        Assert.Equal((false, "the total weight W is out of its bound (test)"), (entry.Completed, entry.AbortReason));
    }

    /// <summary>
    /// Session 56 (session 55's "still missing"): the coordinator died while it read an unmasked sum (here: after its tail),
    /// and its successor aborts the attempt at its takeover (<c>RecordInterruptedAsync</c>). The round grain refuses that
    /// abort, its sum being unmasked, and only the reader ended a slice: the slices not read kept their part of the sum in
    /// the silos' memory for KeptWhileOpen, 30 hours. Now the successor ends every slice.
    /// </summary>
    [Fact]
    public async Task RecordInterrupted_TakeoverWhileTheUnmaskedSumWasRead_EverySliceIsEndedNotKept()
    {
        using var script = new RoundScript(4, seed: 31, round: 31, 300, bitWidth: 20, degree: 3, federation: "cluster-takeover-read");
        var factory = new Front.ClusterRoundServerFactory(_cluster.Grains, 100, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, localSilo: null, epoch: 1);
        var server = (Aggregator.ISlicedRoundServer)await factory.OpenAsync(script.Parameters, CancellationToken.None).WaitAsync(RoundScript.Timeout);
        var cluster = new ClusterRoundClient(_cluster.Grains, "cluster-takeover-read", 31, epoch: 1);
        await script.ThroughShareKeysAsync(cluster, []);
        await script.SendMaskedInputsAsync(cluster, [1, 2, 3, 4]);
        await script.UnmaskAsync(cluster, []);
        Aggregator.SlicedRoundResult result = await server.FinishBySliceAsync(CancellationToken.None).WaitAsync(RoundScript.Timeout);
        Assert.Equal(2, (await result.Sum.TailAsync(298, CancellationToken.None).WaitAsync(RoundScript.Timeout)).Length);
        IManagementGrain management = _cluster.Grains.GetGrain<IManagementGrain>(0);
        Assert.True(await management.GetGrainActivationCount((GrainReference)(object)cluster.Slice(0)).WaitAsync(RoundScript.Timeout) > 0, "slice 0 was not active before the takeover");

        const string Reason = "coordinator takeover: the coordinator of lease epoch 1 stopped while the round was open; this coordinator took over at lease epoch 2";
        var successor = new Front.ClusterRoundServerFactory(_cluster.Grains, 100, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, localSilo: null, epoch: 2);
        Assert.True(await successor.RecordInterruptedAsync("cluster-takeover-read", 31, script.Parameters.SessionId, Reason, CancellationToken.None).WaitAsync(RoundScript.Timeout));

        DateTime deadline = DateTime.UtcNow.AddSeconds(60);
        for (int k = 0; k < 3; k++)
        {
            var slice = (GrainReference)(object)cluster.Slice(k);
            while (await management.GetGrainActivationCount(slice).WaitAsync(RoundScript.Timeout) > 0)
            {
                Assert.True(DateTime.UtcNow < deadline, $"slice {k} of the interrupted attempt's unmasked sum is still active 60 s after the takeover");
                await Task.Delay(200);
            }
        }

        // The round grain still says the sum was unmasked; the ledger holds the successor's abort.
        Assert.Equal("Completed", (await cluster.Round.StatusAsync().WaitAsync(RoundScript.Timeout)).Stage);
        LedgerEntry entry = Assert.Single(await cluster.Ledger.EntriesAsync().WaitAsync(RoundScript.Timeout), e => e.Round == 31 && string.Equals(e.SessionId, script.Parameters.SessionId, StringComparison.Ordinal));
        Assert.Equal((false, Reason, 2L), (entry.Completed, entry.AbortReason, entry.Epoch));
    }

    [Fact]
    public async Task Open_OneSliceFailsToOpen_TheSlicesThatOpenedAreDiscardedNotKeptOpen()
    {
        // Arrange: slice 2 of round 19 refuses to open (here: already open with another layout; on a cluster, a slice placed on
        // a silo that died and is not yet declared dead), so the round cannot be opened; slices 0 and 1 open first.
        using var script = new RoundScript(3, seed: 19, round: 19, 300, bitWidth: 24, degree: 2, federation: "cluster-open-partial");
        var round = new ClusterRoundClient(_cluster.Grains, "cluster-open-partial", 19);
        await round.Slice(2).OpenAsync(0, 1, 1, 24).WaitAsync(RoundScript.Timeout);

        // Act
        await Assert.ThrowsAsync<ClusterProtocolException>(() => round.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(RoundScript.Timeout));

        // Assert: the slices that did open are discarded with the failed attempt (their sums, the silos' admission of
        // uploads), not kept open for RoundGrainOptions.KeptWhileOpen (30 hours) as before.
        for (int k = 0; k < 2; k++)
        {
            Exception? closed = await Record.ExceptionAsync(() => round.Slice(k).CloseAsync().WaitAsync(RoundScript.Timeout));
            Assert.True(closed is ClusterRoundAbortedException, $"slice {k} of the round that failed to open is still open (its close answered {(closed is null ? "the empty committed set" : closed.GetType().Name + ": " + closed.Message)})");
        }
    }

    [Fact]
    public async Task RoundGrain_NeverOpened_AbortsNamingTheLostState()
    {
        IRoundGrain lost = _cluster.Grains.GetGrain<IRoundGrain>(ClusterKeys.Round("cluster-test", 999));

        var ex = await Assert.ThrowsAsync<ClusterRoundAbortedException>(() => lost.CloseAdvertiseKeysAsync().WaitAsync(RoundScript.Timeout));

        Assert.Contains("has no state", ex.Message, StringComparison.Ordinal);
    }
}
