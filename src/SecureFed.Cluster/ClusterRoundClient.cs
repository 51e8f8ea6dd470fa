using SecureFed.Aggregator;
using SecureFed.Cluster.Grains;
using SecureFed.Protocol;

namespace SecureFed.Cluster;

/// <summary>
/// Drives one round on the cluster from outside the grains (a gRPC front silo, the round's coordinator, tests, the
/// benchmark): cuts a site's masked input into slices and hands each to its slice grain, and gathers the unmasked
/// slices at the end. The protocol's other messages go to <see cref="Round"/> as they are.
/// </summary>
public sealed class ClusterRoundClient
{
    private readonly IGrainFactory _grains;
    private readonly TimeProvider _time;
    private readonly Dictionary<int, IGrainFactory> _sliceRoutes = [];
    private SliceLayout? _layout;

    /// <summary>Creates the client for round <paramref name="round"/> of <paramref name="federation"/>.</summary>
    public ClusterRoundClient(IGrainFactory grains, string federation, long round, TimeProvider? time = null)
        : this(grains, federation, round, epoch: 0, time)
    {
    }

    /// <summary>
    /// As above, for the coordinator holding lease epoch <paramref name="epoch"/> (docs/cluster.md §6): its ledger
    /// records carry the epoch, and the ledger refuses a completed round from an epoch lower than one it has seen.
    /// </summary>
    public ClusterRoundClient(IGrainFactory grains, string federation, long round, long epoch, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        Epoch = epoch;
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentException.ThrowIfNullOrEmpty(federation);
        _grains = grains;
        _time = time ?? TimeProvider.System;
        Federation = federation;
        RoundNumber = round;
        RoundKey = ClusterKeys.Round(federation, round);
        Round = grains.GetGrain<IRoundGrain>(RoundKey);
    }

    /// <summary>The federation.</summary>
    public string Federation { get; }

    /// <summary>The coordinator lease epoch this client records outcomes under (0: no lease).</summary>
    public long Epoch { get; }

    /// <summary>The round number.</summary>
    public long RoundNumber { get; }

    /// <summary>The round grain's key.</summary>
    public string RoundKey { get; }

    /// <summary>The round grain.</summary>
    public IRoundGrain Round { get; }

    /// <summary>The federation's ledger grain.</summary>
    public ILedgerGrain Ledger => _grains.GetGrain<ILedgerGrain>(Federation);

    /// <summary>Opens the round on the cluster.</summary>
    public async Task OpenAsync(ClusterRoundSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        await Round.OpenAsync(spec).WaitAsync(cancellationToken).ConfigureAwait(false);
        _layout = spec.Layout;
    }

    /// <summary>
    /// Sends slice <paramref name="slice"/>'s chunks and its result request through <paramref name="grains"/> (a cluster
    /// client connected only to the gateway of the silo that hosts the slice grain, <see cref="ISliceGrain.SiloAsync"/>),
    /// so that the slice's bytes enter the cluster at that silo instead of being forwarded to it by another gateway. Without
    /// a route a slice is reached through the factory given to the constructor.
    /// </summary>
    public void RouteSlice(int slice, IGrainFactory grains)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slice);
        ArgumentNullException.ThrowIfNull(grains);
        _sliceRoutes[slice] = grains;
    }

    /// <summary>
    /// Sends <paramref name="sender"/>'s masked input (m words, each below 2^b): slice k to slice grain k, then tells the
    /// round grain; the round commits the input once every slice holds it. Each slice grain sees only its slice.
    /// </summary>
    public Task SendMaskedInputAsync(int sender, uint[] maskedInput, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(maskedInput);
        return SendMaskedInputAsync(sender, maskedInput.AsMemory(), cancellationToken);
    }

    /// <summary>
    /// As <see cref="SendMaskedInputAsync(int, uint[], CancellationToken)"/>, from memory the caller may reuse once the
    /// task completes (each slice is copied before it is sent).
    /// </summary>
    public async Task SendMaskedInputAsync(int sender, ReadOnlyMemory<uint> maskedInput, CancellationToken cancellationToken)
    {
        SliceLayout layout = _layout ??= await Round.LayoutAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        if (maskedInput.Length != layout.VectorLength)
        {
            throw new ClusterProtocolException($"index {sender}: sent a vector of {maskedInput.Length} words; the round's length is {layout.VectorLength}");
        }

        // Every slice takes its chunk before the round hears of any: a vector one slice refuses (a chunk of the sender's
        // already there with other words) is refused whole, as in a single process, and the chunks the other slices took
        // are never delivered, so they leave the sum when the stage closes. Delivered slice by slice, the last delivery
        // would commit the sender with the refused slice's earlier words in place of the vector's.
        string[] digests = await Task.WhenAll(Enumerable.Range(0, layout.Count).Select(async k =>
        {
            uint[] chunk = maskedInput.Span.Slice(layout.Offset(k), layout.Length(k)).ToArray();
            string sha = Convert.ToHexStringLower(WireEncoding.VectorDigest(chunk));
            await AbortIfSliceFailedAsync(Slice(k).AddChunkAsync(sender, new Orleans.Concurrency.Immutable<uint[]>(chunk))).WaitAsync(cancellationToken).ConfigureAwait(false);
            return sha;
        })).ConfigureAwait(false);
        await Task.WhenAll(Enumerable.Range(0, layout.Count).Select(k => Round.SliceDeliveredAsync(sender, k, digests[k]).WaitAsync(cancellationToken))).ConfigureAwait(false);
    }

    /// <summary>
    /// Protocol version 4: slice <paramref name="slice"/> of <paramref name="sender"/>'s masked input (its words already
    /// checked against <paramref name="sha256"/>) to its slice grain, then the round grain. Returns false for an identical
    /// retry. The memory is copied before it is sent.
    /// </summary>
    public Task<bool> SendSliceAsync(int sender, int slice, ReadOnlyMemory<uint> words, string sha256, CancellationToken cancellationToken)
        => SendOwnedSliceAsync(sender, slice, words.ToArray(), sha256, cancellationToken);

    /// <summary>
    /// As <see cref="SendSliceAsync"/>, but <paramref name="words"/> (exactly the slice) is passed without a copy to a slice
    /// grain on this silo (which adds it into its sum and does not keep it), so the caller must not change it until the
    /// task completes.
    /// </summary>
    public async Task<bool> SendOwnedSliceAsync(int sender, int slice, uint[] words, string sha256, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(words);
        bool fresh = await AbortIfSliceFailedAsync(Slice(slice).AddChunkAsync(sender, new Orleans.Concurrency.Immutable<uint[]>(words))).WaitAsync(cancellationToken).ConfigureAwait(false);
        await Round.SliceDeliveredAsync(sender, slice, sha256).WaitAsync(cancellationToken).ConfigureAwait(false);
        return fresh;
    }

    /// <summary>
    /// Awaits a call to a slice grain; when the slice says the round cannot go on (<see cref="ClusterRoundAbortedException"/>:
    /// it lost its state, or could not spill a chunk it added), aborts the round at once with that reason (best effort: the
    /// close of the input stage aborts it at the latest) and rethrows.
    /// </summary>
    internal async Task<T> AbortIfSliceFailedAsync<T>(Task<T> call)
    {
        ArgumentNullException.ThrowIfNull(call);
        await AbortIfSliceFailedAsync((Task)call).ConfigureAwait(false);
        return await call.ConfigureAwait(false);
    }

    /// <inheritdoc cref="AbortIfSliceFailedAsync{T}(Task{T})"/>
    internal async Task AbortIfSliceFailedAsync(Task call)
    {
        ArgumentNullException.ThrowIfNull(call);
        try
        {
            await call.ConfigureAwait(false);
        }
        catch (ClusterRoundAbortedException ex)
        {
            try
            {
                await Round.AbortAsync(ex.Message).ConfigureAwait(false);
            }
            catch (Exception abort) when (abort is ClusterRoundAbortedException or ClusterProtocolException or TimeoutException or OrleansException)
            {
                // The round is already aborted or lost; the close of the stage will say so.
            }

            // The round keeps its first abort's reason. When another slice's failure aborted it first, that abort discarded
            // this slice, which then said only that it has no state: report the cause (CI run of aaa89cb: a full disk's
            // "could not spill" in one slice, "slice …/1 has no state" reported from the other).
            if (await FirstAbortReasonAsync().ConfigureAwait(false) is string first && !string.Equals(first, ex.Message, StringComparison.Ordinal))
            {
                throw new ClusterRoundAbortedException(first, ex);
            }

            throw;
        }
    }

    /// <summary>The reason the round grain recorded for its abort; null when it was not aborted or cannot be asked.</summary>
    private async Task<string?> FirstAbortReasonAsync()
    {
        try
        {
            ClusterRoundStatus status = await Round.StatusAsync().ConfigureAwait(false);
            return status.Stage == nameof(ProtocolStage.Aborted) ? status.AbortReason : null;
        }
        catch (Exception ex) when (ex is ClusterRoundAbortedException or ClusterProtocolException or TimeoutException or OrleansException)
        {
            return null;
        }
    }

    /// <summary>
    /// Finishes the round: the round grain rebuilds the secrets and has every slice unmasked; this gathers the slices into
    /// the sum and returns the result (<see cref="RecordAsync"/> then records it in the ledger).
    /// </summary>
    public async Task<AggregationResult> FinishAsync(CancellationToken cancellationToken)
    {
        ClusterRoundResult result = await Round.FinishAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        SliceLayout layout = result.Layout;
        uint[] sum = new uint[layout.VectorLength];
        await Task.WhenAll(Enumerable.Range(0, layout.Count).Select(async k =>
        {
            // Each slice goes into the sum as soon as it arrives and is dropped (no slice waits for the others).
            Orleans.Concurrency.Immutable<uint[]> slice = await Slice(k).ResultAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            GatherSlice(layout, k, slice.Value, sum);
        })).ConfigureAwait(false);
        return result.ToAggregationResult(sum);
    }

    /// <summary>
    /// Finishes the round as <see cref="FinishAsync"/> does, but leaves the unmasked slices in their grains: the returned
    /// sum reads its tail from the grains that hold it, then the slices one after the other, in order, a piece at a time
    /// (each slice grain ends after its slice was read), so the reader never holds more than one piece of the sum.
    /// </summary>
    /// <param name="record">Told the whole sum's SHA-256 once the sum was read (<see cref="UnmaskedSum.RecordAsync"/>), if given.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <param name="pieceWords">Words read per grain call (<see cref="SlicedClusterSum.PieceWords"/>).</param>
    public async Task<(ClusterRoundResult Result, SlicedClusterSum Sum)> FinishBySliceAsync(Func<string, CancellationToken, Task>? record, CancellationToken cancellationToken, int pieceWords = SlicedClusterSum.DefaultPieceWords)
    {
        ClusterRoundResult result = await Round.FinishAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        return (result, new SlicedClusterSum(this, result.Layout, record, pieceWords));
    }

    /// <summary>
    /// Copies unmasked slice <paramref name="k"/> into its place in <paramref name="sum"/> (slices are disjoint, so they
    /// may be gathered concurrently).
    /// </summary>
    /// <exception cref="ClusterRoundAbortedException">The slice is not exactly the layout's slice k (it would leave words of the sum unset).</exception>
    internal static void GatherSlice(SliceLayout layout, int k, uint[]? slice, uint[] sum)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(sum);
        if (sum.Length != layout.VectorLength)
        {
            throw new ArgumentException($"The sum has {sum.Length} words; the layout's vector has {layout.VectorLength}.", nameof(sum));
        }

        if (slice is null || slice.Length != layout.Length(k))
        {
            throw new ClusterRoundAbortedException($"slice {k} returned {slice?.Length ?? 0} unmasked words; the slice has {layout.Length(k)}");
        }

        slice.CopyTo(sum, layout.Offset(k));
    }

    /// <summary>SHA-256 (lower-case hex) of the sum's words as little-endian u32.</summary>
    public static string SumDigest(uint[] sum) => Convert.ToHexStringLower(WireEncoding.VectorDigest(sum));

    /// <summary>
    /// Records the round's outcome in the ledger: completed with the sum's digest and contributors, or aborted with the
    /// reason. Used by the round's driver, which also records an abort when the round grain itself was lost.
    /// </summary>
    public Task<bool> RecordAsync(string sessionId, AggregationResult? result, IReadOnlyList<Participant> participants, string? abortReason, CancellationToken cancellationToken)
        => result is not null
            ? RecordCompletedAsync(sessionId, SumDigest(result.Sum), result.Contributors, participants, cancellationToken)
            : RecordAbortedAsync(sessionId, abortReason, cancellationToken);

    /// <summary>Records the round as completed with the sum's SHA-256 (<see cref="SumDigest"/>, e.g. computed while the sum was read by slice) and its contributors.</summary>
    public Task<bool> RecordCompletedAsync(string sessionId, string sumSha256, IEnumerable<int> contributors, IReadOnlyList<Participant> participants, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(sumSha256);
        ArgumentNullException.ThrowIfNull(contributors);
        ArgumentNullException.ThrowIfNull(participants);
        var entry = new LedgerEntry(RoundNumber, sessionId, Completed: true, sumSha256, [.. contributors.Select(i => participants[i - 1].Name)], null, _time.GetUtcNow(), Epoch);
        return RecordWithRetryAsync(entry, cancellationToken);
    }

    private Task<bool> RecordAbortedAsync(string sessionId, string? abortReason, CancellationToken cancellationToken)
    {
        var entry = new LedgerEntry(RoundNumber, sessionId, Completed: false, null, [], abortReason ?? "aborted", _time.GetUtcNow(), Epoch);
        return RecordWithRetryAsync(entry, cancellationToken);
    }

    /// <summary>How long a ledger entry is retried while the transport refuses it (a silo just died).</summary>
    internal static readonly TimeSpan LedgerRetryWindow = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Records <paramref name="entry"/>, again while the transport refuses the call: right after a silo dies, a call may
    /// still be routed to it (the ledger grain or the directory partition lived there) until membership and the directory
    /// have moved on. A retry is safe: the ledger answers an identical entry with false ("already recorded") and refuses
    /// a different one. Any other failure, and the last refusal after <see cref="LedgerRetryWindow"/>, is the caller's.
    /// </summary>
    private async Task<bool> RecordWithRetryAsync(LedgerEntry entry, CancellationToken cancellationToken)
    {
        // Real time, not the injected clock (which stamps the entries): the transport recovers in real time.
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            try
            {
                return await Ledger.RecordAsync(entry).WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is Orleans.Runtime.OrleansMessageRejectionException or Orleans.Runtime.SiloUnavailableException
                && System.Diagnostics.Stopwatch.GetElapsedTime(started) < LedgerRetryWindow)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Slice grain <paramref name="k"/> of this round, reached through its route (<see cref="RouteSlice"/>) if any.</summary>
    public ISliceGrain Slice(int k) => _sliceRoutes.GetValueOrDefault(k, _grains).GetGrain<ISliceGrain>(ClusterKeys.Slice(RoundKey, k));
}
