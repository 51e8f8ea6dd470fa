using Microsoft.Extensions.DependencyInjection;
using Orleans.Concurrency;
using Orleans.TestingHost;
using SecureFed.Cluster.Grains;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A slice grain adds each chunk into its sum as it arrives and keeps it on local disk only until its sender is committed
/// (docs/cluster.md §6): a sender that never reaches every slice is subtracted everywhere, retries are recognised by the
/// chunk's SHA-256, a conflicting chunk is refused, and the spill files go at the commit and the close.
/// </summary>
public sealed class SliceSpillTests : IClassFixture<ThreeSiloCluster>
{
    private const int M = 3_001;
    private static readonly TimeSpan Timeout = RoundScript.Timeout;
    private readonly ThreeSiloCluster _cluster;

    public SliceSpillTests(ThreeSiloCluster cluster)
    {
        _cluster = cluster;
    }

    [Fact]
    public async Task CloseMaskedInput_SenderAddedToSomeSlicesOnly_IsSubtractedEverywhereAndSumEqualsSingleProcessBitForBit()
    {
        // Arrange: 6 sites, 3 slices on the three silos; site 2's chunk is added whole into slices 0 and 1 and half of it
        // is streamed into slice 2, so it is in every slice's running sum in part, and it is never committed.
        using var script = new RoundScript(6, seed: 41, round: 41, M, bitWidth: 24, degree: 5);
        var round = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, 41);
        await round.OpenAsync(ClusterRoundSpec.From(script.Parameters, 1_001), CancellationToken.None).WaitAsync(Timeout);
        await script.ThroughShareKeysAsync(round, []);
        SliceLayout layout = await round.Round.LayoutAsync().WaitAsync(Timeout);
        uint[] masked = await MaskAsync(script, round, 2);
        for (int k = 0; k < 2; k++)
        {
            uint[] chunk = Chunk(layout, masked, k);
            Assert.True(await round.SendSliceAsync(2, k, chunk, Sha(chunk), CancellationToken.None).WaitAsync(Timeout));
        }

        uint[] last = Chunk(layout, masked, 2);
        long upload = await round.Slice(2).BeginChunkAsync(2, Sha(last)).WaitAsync(Timeout);
        await round.Slice(2).AddPieceAsync(2, upload, 0, new Immutable<uint[]>(last[..500]), 500).WaitAsync(Timeout);
        Assert.Equal(3, OpenSpills()); // site 2's three chunks, spilled until the close
        AssertNoneOnDisk(); // on Unix each spill file is unlinked once open: its handle keeps the words

        // Act: the other sites send their whole inputs (committed: their spills go at once) and the stage closes.
        await script.SendMaskedInputsAsync(round, [1, 3, 4, 5, 6]);
        Assert.Equal(3, OpenSpills());
        AssertNoneOnDisk();
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(round, []);

        // Assert: site 2 is left out of every slice, exactly as the single process (which never saw its input) leaves it out.
        Assert.Equal([1, 3, 4, 5, 6], clustered.Contributors);
        Assert.Equal([2], clustered.DroppedBeforeInput);
        Assert.Equal(single.Sum, clustered.Sum);
        Assert.Equal(script.ExpectedSum([1, 3, 4, 5, 6]), clustered.Sum);
        Assert.Equal(0, OpenSpills());
        Assert.Empty(SpillFiles());
    }

    [Fact]
    public async Task AddChunk_RetriesAfterTheAddAndConflictingChunks_RetriesAcceptedOnceConflictsRefusedSumUnchanged()
    {
        using var script = new RoundScript(4, seed: 43, round: 43, M, bitWidth: 20, degree: 3);
        var round = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, 43);
        await round.OpenAsync(ClusterRoundSpec.From(script.Parameters, 1_001), CancellationToken.None).WaitAsync(Timeout);
        await script.ThroughShareKeysAsync(round, []);
        SliceLayout layout = await round.Round.LayoutAsync().WaitAsync(Timeout);
        uint[] masked = await MaskAsync(script, round, 3);
        uint[] chunk = Chunk(layout, masked, 0);
        uint[] conflicting = (uint[])chunk.Clone();
        conflicting[7] ^= 1;
        ISliceGrain slice = round.Slice(0);

        // Before the commit: the chunk is in the sum; an identical retry (whole or streamed) is a retry, another chunk is refused.
        Assert.True(await slice.AddChunkAsync(3, new Immutable<uint[]>(chunk)).WaitAsync(Timeout));
        Assert.False(await slice.AddChunkAsync(3, new Immutable<uint[]>((uint[])chunk.Clone())).WaitAsync(Timeout));
        Assert.False(await StreamAsync(slice, 3, chunk, pieceWords: 400));
        var refused = await Assert.ThrowsAsync<ClusterProtocolException>(() => slice.AddChunkAsync(3, new Immutable<uint[]>(conflicting)).WaitAsync(Timeout));
        Assert.Contains("index 3: already sent its masked input", refused.Message, StringComparison.Ordinal);
        var streamed = await Assert.ThrowsAsync<ClusterProtocolException>(() => StreamAsync(slice, 3, conflicting, pieceWords: 400));
        Assert.Contains("already sent", streamed.Message, StringComparison.Ordinal);

        // A retry whose words do not match the digest it announces is refused and changes nothing.
        long upload = await slice.BeginChunkAsync(3, Sha(chunk)).WaitAsync(Timeout);
        await slice.AddPieceAsync(3, upload, 0, new Immutable<uint[]>(conflicting), conflicting.Length).WaitAsync(Timeout);
        var mismatch = await Assert.ThrowsAsync<ClusterProtocolException>(() => slice.EndChunkAsync(3, upload).WaitAsync(Timeout));
        Assert.Contains("do not match the SHA-256", mismatch.Message, StringComparison.Ordinal);

        // The rest of site 3's input and the other sites' inputs; after the commit, the identical retry is still a retry.
        for (int k = 1; k < layout.Count; k++)
        {
            uint[] rest = Chunk(layout, masked, k);
            Assert.True(await round.SendSliceAsync(3, k, rest, Sha(rest), CancellationToken.None).WaitAsync(Timeout));
        }

        Assert.False(await round.SendSliceAsync(3, 0, chunk, Sha(chunk), CancellationToken.None).WaitAsync(Timeout)); // delivers slice 0: committed
        Assert.Contains(3, (await round.Round.ProgressAsync().WaitAsync(Timeout)).Delivered);
        script.Single.AcceptMaskedInput(3, masked);
        Assert.False(await slice.AddChunkAsync(3, new Immutable<uint[]>(chunk)).WaitAsync(Timeout));
        await Assert.ThrowsAsync<ClusterProtocolException>(() => slice.AddChunkAsync(3, new Immutable<uint[]>(conflicting)).WaitAsync(Timeout));
        await script.SendMaskedInputsAsync(round, [1, 2, 4]);
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(round, []);

        // Site 3's chunk is in the sum once, the conflicting one not at all.
        Assert.Equal([1, 2, 3, 4], clustered.Contributors);
        Assert.Equal(single.Sum, clustered.Sum);
        Assert.Equal(script.ExpectedSum([1, 2, 3, 4]), clustered.Sum);
    }

    [Fact]
    public async Task AddPiece_BadWordOrAbandonedUpload_WordsLeaveTheSumAndAFreshUploadIsTaken()
    {
        using var script = new RoundScript(3, seed: 47, round: 47, M, bitWidth: 16, degree: 2);
        var round = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, 47);
        await round.OpenAsync(ClusterRoundSpec.From(script.Parameters, 1_001), CancellationToken.None).WaitAsync(Timeout);
        await script.ThroughShareKeysAsync(round, []);
        SliceLayout layout = await round.Round.LayoutAsync().WaitAsync(Timeout);
        uint[] masked = await MaskAsync(script, round, 1);
        uint[] chunk = Chunk(layout, masked, 1);
        ISliceGrain slice = round.Slice(1);

        // A piece with an unreduced word: the upload's earlier pieces leave the sum, the upload is closed.
        long bad = await slice.BeginChunkAsync(1, Sha(chunk)).WaitAsync(Timeout);
        await slice.AddPieceAsync(1, bad, 0, new Immutable<uint[]>(chunk[..600]), 600).WaitAsync(Timeout);
        uint[] unreduced = chunk[600..];
        unreduced[3] = 1u << 16;
        var ex = await Assert.ThrowsAsync<ClusterProtocolException>(() => slice.AddPieceAsync(1, bad, 600, new Immutable<uint[]>(unreduced), unreduced.Length).WaitAsync(Timeout));
        Assert.Contains($"word {layout.Offset(1) + 603} is not reduced modulo 2^16", ex.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ClusterProtocolException>(() => slice.EndChunkAsync(1, bad).WaitAsync(Timeout));

        // An upload that breaks off (abandoned), and one replaced by a newer upload: their words leave the sum too.
        long cut = await slice.BeginChunkAsync(1, Sha(chunk)).WaitAsync(Timeout);
        await slice.AddPieceAsync(1, cut, 0, new Immutable<uint[]>(chunk[..300]), 300).WaitAsync(Timeout);
        await slice.AbandonChunkAsync(1, cut).WaitAsync(Timeout);
        long replaced = await slice.BeginChunkAsync(1, Sha(chunk)).WaitAsync(Timeout);
        await slice.AddPieceAsync(1, replaced, 0, new Immutable<uint[]>(chunk[..700]), 700).WaitAsync(Timeout);

        // Act: the whole input of site 1 arrives (a fresh upload of slice 1), then sites 2 and 3.
        await round.SendMaskedInputAsync(1, masked, CancellationToken.None).WaitAsync(Timeout);
        script.Single.AcceptMaskedInput(1, masked);
        await script.SendMaskedInputsAsync(round, [2, 3]);
        await Assert.ThrowsAsync<ClusterProtocolException>(() => slice.AddPieceAsync(1, replaced, 700, new Immutable<uint[]>(chunk[700..]), chunk.Length - 700).WaitAsync(Timeout));
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(round, []);

        Assert.Equal(single.Sum, clustered.Sum);
        Assert.Equal(script.ExpectedSum([1, 2, 3]), clustered.Sum);
    }

    [Fact]
    public async Task AcceptMaskedInputSlice_CoordinatorStreamsPieces_RefusedBrokenAndMismatchedUploadsLeaveTheSum()
    {
        // Arrange: the coordinator's round server (every silo serves agents, so the round takes slices), 3 slices.
        foreach (InProcessSiloHandle silo in _cluster.Cluster.Silos.Cast<InProcessSiloHandle>())
        {
            silo.SiloHost.Services.GetRequiredService<Front.SiloAgentEndpoint>().Set(new Uri($"https://127.0.0.1:{17100 + silo.SiloAddress.Endpoint.Port % 100}"));
        }

        using var script = new RoundScript(3, seed: 59, round: 59, M, bitWidth: 24, degree: 2);
        var factory = new Front.ClusterRoundServerFactory(_cluster.Grains, 1_001, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        Aggregator.IRoundServer server = await factory.OpenAsync(script.Parameters, CancellationToken.None).WaitAsync(Timeout);
        Assert.NotNull(server.SliceUploads);
        var round = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, 59);
        await script.ThroughShareKeysAsync(round, []);
        SliceLayout layout = await round.Round.LayoutAsync().WaitAsync(Timeout);
        uint[] masked = await MaskAsync(script, round, 1);
        uint[][] chunks = [.. Enumerable.Range(0, 3).Select(k => Chunk(layout, masked, k))];
        uint[] conflicting = (uint[])chunks[0].Clone();
        conflicting[999] ^= 1;

        // Act + assert: a refused upload, one whose stream breaks off and one whose words do not match their digest
        // each leave nothing in the sum; the reader's own failure reaches the caller as it is (the round goes on).
        var cut = new Aggregator.SliceUploadRefusal(Grpc.Core.StatusCode.InvalidArgument, "malformed_upload", "cut off");
        Aggregator.SliceUploadOutcome refused = await server.AcceptMaskedInputSliceAsync(1, 0, Sha(chunks[0]), Reader(chunks[0], stopAfter: 500, refusal: cut), CancellationToken.None).WaitAsync(Timeout);
        Assert.Same(cut, refused.Refusal);
        Assert.False(refused.Fresh);
        await Assert.ThrowsAsync<IOException>(() => server.AcceptMaskedInputSliceAsync(1, 0, Sha(chunks[0]), Reader(chunks[0], stopAfter: 300, breaks: true), CancellationToken.None).WaitAsync(Timeout));
        Aggregator.SliceUploadOutcome mismatch = await server.AcceptMaskedInputSliceAsync(1, 0, Sha(chunks[0]), Reader(conflicting), CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal(Grpc.Core.StatusCode.DataLoss, mismatch.Refusal?.Code);
        Assert.Equal("slice 0 does not match the SHA-256 announced in its first chunk", mismatch.Refusal?.Reason);

        // The right slices, slice 0 twice (the second is a retry).
        Assert.True((await server.AcceptMaskedInputSliceAsync(1, 0, Sha(chunks[0]), Reader(chunks[0]), CancellationToken.None).WaitAsync(Timeout)).Fresh);
        Aggregator.SliceUploadOutcome retry = await server.AcceptMaskedInputSliceAsync(1, 0, Sha(chunks[0]), Reader(chunks[0]), CancellationToken.None).WaitAsync(Timeout);
        Assert.False(retry.Fresh);
        Assert.Null(retry.Refusal);
        for (int k = 1; k < 3; k++)
        {
            Assert.True((await server.AcceptMaskedInputSliceAsync(1, k, Sha(chunks[k]), Reader(chunks[k]), CancellationToken.None).WaitAsync(Timeout)).Fresh);
        }

        script.Single.AcceptMaskedInput(1, masked);
        await script.SendMaskedInputsAsync(round, [2, 3]);
        (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(round, []);

        Assert.Equal([1, 2, 3], clustered.Contributors);
        Assert.Equal(single.Sum, clustered.Sum);
        Assert.Equal(script.ExpectedSum([1, 2, 3]), clustered.Sum);
    }

    /// <summary>An upload as the coordinator's service reads it: 256-word pieces from one reused buffer.</summary>
    private static Aggregator.SliceWordsReader Reader(uint[] chunk, int stopAfter = int.MaxValue, Aggregator.SliceUploadRefusal? refusal = null, bool breaks = false)
        => async (piece, ct) =>
        {
            uint[] buffer = new uint[256];
            for (int offset = 0; offset < chunk.Length; offset += buffer.Length)
            {
                if (offset >= stopAfter)
                {
                    return breaks ? throw new IOException("the client reset the stream") : refusal;
                }

                int count = Math.Min(buffer.Length, chunk.Length - offset);
                chunk.AsSpan(offset, count).CopyTo(buffer);
                await piece(buffer.AsMemory(0, count), offset);
                Array.Clear(buffer); // the server must not keep the piece
            }

            return null;
        };

    [Fact]
    public async Task SendMaskedInput_SpillCannotBeWritten_RoundAbortsNamingTheSpillBeforeAnythingIsRevealed()
    {
        // Arrange: a one-silo cluster whose spill files cannot be written (the disk is full).
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<FullDiskSilo>();
        await using TestCluster cluster = builder.Build();
        await cluster.DeployAsync().WaitAsync(TimeSpan.FromSeconds(120));
        try
        {
            using var script = new RoundScript(3, seed: 53, round: 53, 300, bitWidth: 20, degree: 2);
            var round = new ClusterRoundClient(cluster.GrainFactory, script.Parameters.FederationId, 53);
            await round.OpenAsync(ClusterRoundSpec.From(script.Parameters, 100), CancellationToken.None).WaitAsync(Timeout);
            await script.ThroughShareKeysAsync(round, []);
            uint[] masked = await MaskAsync(script, round, 1);

            // Act
            var ex = await Assert.ThrowsAsync<ClusterRoundAbortedException>(() => round.SendMaskedInputAsync(1, masked, CancellationToken.None).WaitAsync(Timeout));

            // Assert: the reason names the spill and the full disk; the round is aborted (in the ledger too) at the masked-input stage.
            Assert.Contains("could not spill the masked input of index 1 to local disk", ex.Message, StringComparison.Ordinal);
            Assert.Contains("No space left on device", ex.Message, StringComparison.Ordinal);
            ClusterRoundStatus status = await round.Round.StatusAsync().WaitAsync(Timeout);
            Assert.Equal(nameof(ProtocolStage.Aborted), status.Stage);
            Assert.Contains("could not spill", status.AbortReason, StringComparison.Ordinal);
            var closed = await Assert.ThrowsAsync<ClusterProtocolException>(() => round.Round.CloseMaskedInputAsync().WaitAsync(Timeout));
            Assert.Contains("could not spill the masked input of index 1", closed.Message, StringComparison.Ordinal);
            LedgerEntry entry = Assert.Single(await round.Ledger.EntriesAsync().WaitAsync(Timeout), e => e.Round == 53);
            Assert.False(entry.Completed);
            Assert.Contains("could not spill", entry.AbortReason, StringComparison.Ordinal);
        }
        finally
        {
            await cluster.StopAllSilosAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    [Fact]
    public async Task DeleteStale_FilesLeftByAKilledSilo_AreDeletedAndOthersKept()
    {
        string directory = Directory.CreateTempSubdirectory("securefed-spill-test-").FullName;
        try
        {
            var store = new SliceSpillStore(directory);
            File.WriteAllBytes(Path.Combine(directory, "f_1_0.2.1.spill"), new byte[16]);
            File.WriteAllBytes(Path.Combine(directory, "f_1_1.3.2.spill"), new byte[16]);
            File.WriteAllText(Path.Combine(directory, "notes.txt"), "not a spill");

            Assert.Equal(2, store.DeleteStale());
            Assert.Equal(["notes.txt"], Directory.GetFiles(directory).Select(Path.GetFileName));

            // Unix: unlinked once open, the words still there through the handle; elsewhere on disk until closed.
            using (SliceSpill spill = store.Create("f/1/0", 2))
            {
                Assert.Equal(OperatingSystem.IsWindows() ? 1 : 0, Directory.GetFiles(directory, "*.spill").Length);
                Assert.Equal(1, store.OpenSpills);
                await spill.AppendAsync(new uint[] { 5, 7, 9 }, CancellationToken.None);
                uint[] sum = [10, 10, 10];
                await spill.SubtractFromAsync(sum, 32, CancellationToken.None);
                Assert.Equal([5u, 3u, 1u], sum);
            }

            Assert.Empty(Directory.GetFiles(directory, "*.spill")); // deleted on close
            Assert.Equal(0, store.OpenSpills);

            // Where the unlink fails, the fallback: the file stays until the spill is closed, then it goes.
            var failing = new UnlinkFailsStore(directory);
            using (SliceSpill spill = failing.Create("f/1/0", 3))
            {
                Assert.Single(Directory.GetFiles(directory, "*.spill"));
            }

            Assert.Empty(Directory.GetFiles(directory, "*.spill"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task RecordInterrupted_RoundLeftOpenByTheDeadCoordinator_RoundGrainAbortedSpillsGoneAndSliceUploadsRefused()
    {
        // Arrange: the coordinator of lease epoch 2 opened round 61 on the cluster and stopped during its masked-input stage;
        // site 1 had sent two of its three slices (added, spilled, not committed).
        using var script = new RoundScript(3, seed: 61, round: 61, M, bitWidth: 24, degree: 2);
        var round = new ClusterRoundClient(_cluster.Grains, script.Parameters.FederationId, 61, epoch: 2);
        await round.OpenAsync(ClusterRoundSpec.From(script.Parameters, 1_001), CancellationToken.None).WaitAsync(Timeout);
        await script.ThroughShareKeysAsync(round, []);
        SliceLayout layout = await round.Round.LayoutAsync().WaitAsync(Timeout);
        uint[] masked = await MaskAsync(script, round, 1);
        long spillsBefore = OpenSpills();
        for (int k = 0; k < 2; k++)
        {
            uint[] chunk = Chunk(layout, masked, k);
            Assert.True(await round.SendSliceAsync(1, k, chunk, Sha(chunk), CancellationToken.None).WaitAsync(Timeout));
        }

        Assert.Equal(spillsBefore + 2, OpenSpills());

        // Act: the coordinator that took over at epoch 3 aborts the attempt (as RoundCoordinator does at start-up).
        const string Reason = "coordinator takeover: the coordinator of lease epoch 2 stopped while the round was open; this coordinator took over at lease epoch 3";
        var successor = new Front.ClusterRoundServerFactory(_cluster.Grains, 1_001, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, localSilo: null, epoch: 3);
        Assert.True(await successor.RecordInterruptedAsync(script.Parameters.FederationId, 61, script.Parameters.SessionId, Reason, CancellationToken.None).WaitAsync(Timeout));

        // Assert: the cluster no longer runs the aborted attempt: its round grain is aborted with the reason, the slices'
        // spills are closed, and a slice upload for it is refused (it used to stay open for 30 hours, taking uploads).
        ClusterRoundStatus status = await round.Round.StatusAsync().WaitAsync(Timeout);
        Assert.True(status.Stage == "Aborted", $"expected the interrupted round's grain to be aborted, found stage {status.Stage}");
        Assert.Equal(Reason, status.AbortReason);
        for (int wait = 0; wait < 100 && OpenSpills() != spillsBefore; wait++)
        {
            await Task.Delay(50); // the round grain tells its slices without waiting for them
        }

        Assert.Equal(spillsBefore, OpenSpills());
        SliceAdmission admission = await round.Round.AdmitSliceAsync(61, script.Parameters.SessionId, script.Parameters.Participants[0].Name, 2).WaitAsync(Timeout);
        Assert.False(admission.Admitted, "a slice upload for the interrupted round was admitted after the takeover");
        LedgerEntry entry = Assert.Single(await round.Ledger.EntriesAsync().WaitAsync(Timeout), e => e.Round == 61);
        Assert.Equal((false, Reason, 3L), (entry.Completed, entry.AbortReason, entry.Epoch)); // recorded under the successor's epoch
    }

    private long OpenSpills()
        => _cluster.Cluster.Silos.Cast<InProcessSiloHandle>().Sum(s => s.SiloHost.Services.GetRequiredService<SliceSpillStore>().OpenSpills);

    private void AssertNoneOnDisk()
    {
        if (!OperatingSystem.IsWindows())
        {
            Assert.Empty(SpillFiles());
        }
    }

    private string[] SpillFiles()
        => [.. _cluster.Cluster.Silos.Cast<InProcessSiloHandle>()
            .Select(s => s.SiloHost.Services.GetRequiredService<SliceSpillStore>().Directory)
            .Where(Directory.Exists)
            .SelectMany(d => Directory.GetFiles(d, "*.spill"))];

    private static async Task<bool> StreamAsync(ISliceGrain slice, int sender, uint[] chunk, int pieceWords)
    {
        long upload = await slice.BeginChunkAsync(sender, Sha(chunk)).WaitAsync(Timeout);
        for (int offset = 0; offset < chunk.Length; offset += pieceWords)
        {
            int count = Math.Min(pieceWords, chunk.Length - offset);
            await slice.AddPieceAsync(sender, upload, offset, new Immutable<uint[]>(chunk[offset..(offset + count)]), count).WaitAsync(Timeout);
        }

        return await slice.EndChunkAsync(sender, upload).WaitAsync(Timeout);
    }

    internal static async Task<uint[]> MaskAsync(RoundScript script, ClusterRoundClient round, int site)
    {
        EncryptedShare[] forMe = await round.Round.SharesForAsync(site).WaitAsync(Timeout);
        var masked = new uint[script.Parameters.VectorLength];
        script.Client(site).MaskInput(forMe, script.Inputs[site - 1], masked);
        return masked;
    }

    internal static uint[] Chunk(SliceLayout layout, uint[] vector, int k) => vector.AsSpan(layout.Offset(k), layout.Length(k)).ToArray();

    internal static string Sha(uint[] words) => Convert.ToHexStringLower(WireEncoding.VectorDigest(words));

    private sealed class FullDiskSilo : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddSecureFedCluster();
            siloBuilder.AddMemoryGrainStorage("securefed");
            siloBuilder.Services.AddSingleton<SliceSpillStore>(new FullDiskSpillStore());
        }
    }

    /// <summary>A spill store on a file system where a file cannot be unlinked while open (the fallback path).</summary>
    internal sealed class UnlinkFailsStore(string directory) : SliceSpillStore(directory)
    {
        protected override void Unlink(string path) => throw new IOException("unlink refused (test)");
    }

    private sealed class FullDiskSpillStore() : SliceSpillStore(Path.Combine(Path.GetTempPath(), "securefed-full-disk-test"))
    {
        protected override Stream Open(string path, bool deleteOnClose) => new FullDiskStream();
    }

    /// <summary>A file on a full disk: it opens, and every write fails as write(2) does with ENOSPC.</summary>
    private sealed class FullDiskStream : MemoryStream
    {
        public override void Write(byte[] buffer, int offset, int count) => throw Full();

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromException(Full());

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromException(Full());

        private static IOException Full() => new("No space left on device", 28);
    }
}
