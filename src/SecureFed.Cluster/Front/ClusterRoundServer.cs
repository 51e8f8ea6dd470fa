using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Front;

/// <summary>
/// The server side of one round attempt on the aggregator cluster, for the coordinator silo's
/// <see cref="RoundCoordinator"/> and gRPC service: every call goes to the round grain (the small stages) or, for a
/// masked input, to the slice grains (<see cref="ClusterRoundClient.SendMaskedInputAsync(int, ReadOnlyMemory{uint}, CancellationToken)"/>).
/// A refusal of the cluster becomes the same <see cref="ProtocolViolationException"/> the single process throws; a round
/// the cluster lost or aborted becomes a <see cref="RoundAbortedException"/> with the cluster's reason.
/// </summary>
internal sealed partial class ClusterRoundServer : IRoundServer, ISlicedRoundServer
{
    /// <summary>How long an abort waits for the cluster before giving up (the round is recorded as aborted anyway).</summary>
    private static readonly TimeSpan AbortWait = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long the driver keeps trying to record an abort the round grain could not record (longer than membership
    /// takes to declare a killed silo dead, so a ledger grain that lived there is reached again).
    /// </summary>
    private static readonly TimeSpan LedgerWait = TimeSpan.FromSeconds(60);

    private static readonly TimeSpan LedgerRetryDelay = TimeSpan.FromSeconds(1);

    private readonly ClusterRoundClient _client;
    private readonly string _sessionId;
    private readonly IReadOnlyList<Participant> _participants;
    private readonly ILogger _logger;
    private readonly string? _localSilo;
    private RoundServerStatus _last;
    private SliceLayout? _unmasked;

    public ClusterRoundServer(ClusterRoundClient client, RoundParameters parameters, ILogger logger, SliceUploadLayout? sliceUploads = null, string? localSilo = null)
    {
        SliceUploads = sliceUploads;
        _localSilo = localSilo;
        _client = client;
        _sessionId = parameters.SessionId;
        _participants = parameters.Participants;
        _logger = logger;
        _last = new RoundServerStatus(ProtocolStage.AdvertiseKeys, [.. parameters.Participants.Select(p => p.Index)], []);
    }

    public ProtocolStage Stage => _last.Stage;

    public IReadOnlyCollection<int> Delivered => _last.Delivered;

    public IReadOnlyCollection<int> Expected => _last.Expected;

    public async Task<RoundServerStatus> StatusAsync(CancellationToken cancellationToken)
    {
        ClusterRoundProgress progress = await _client.Round.ProgressAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        if (!Enum.TryParse(progress.Stage, out ProtocolStage stage))
        {
            // The round grain lost its state (its silo failed): the round cannot go on.
            throw new RoundAbortedException(_last.Stage, progress.AbortReason ?? "the cluster lost the round");
        }

        var status = new RoundServerStatus(stage, progress.Expected, progress.Delivered);
        _last = status;
        return status;
    }

    public Task<bool> AcceptAdvertisementAsync(KeyAdvertisement advertisement, CancellationToken cancellationToken)
        => AcceptAsync(ProtocolStage.AdvertiseKeys, () => _client.Round.AcceptAdvertisementAsync(advertisement));

    public Task<IReadOnlyList<int>> CloseAdvertiseKeysAsync(CancellationToken cancellationToken)
        => CloseAsync<IReadOnlyList<int>>(ProtocolStage.AdvertiseKeys, async () => await _client.Round.CloseAdvertiseKeysAsync().ConfigureAwait(false), cancellationToken);

    public Task<IReadOnlyList<KeyAdvertisement>> AdvertisementsForAsync(int recipient, CancellationToken cancellationToken)
        => CallAsync<IReadOnlyList<KeyAdvertisement>>(ProtocolStage.ShareKeys, async () => await _client.Round.AdvertisementsForAsync(recipient).ConfigureAwait(false), cancellationToken);

    public Task<bool> AcceptSharesAsync(int sender, IReadOnlyList<EncryptedShare> shares, CancellationToken cancellationToken)
        => AcceptAsync(ProtocolStage.ShareKeys, () => _client.Round.AcceptSharesAsync(sender, [.. shares]));

    public Task<IReadOnlyList<int>> CloseShareKeysAsync(CancellationToken cancellationToken)
        => CloseAsync<IReadOnlyList<int>>(ProtocolStage.ShareKeys, async () => await _client.Round.CloseShareKeysAsync().ConfigureAwait(false), cancellationToken);

    public Task<IReadOnlyList<EncryptedShare>> SharesForAsync(int recipient, CancellationToken cancellationToken)
        => CallAsync<IReadOnlyList<EncryptedShare>>(ProtocolStage.MaskedInputCollection, async () => await _client.Round.SharesForAsync(recipient).ConfigureAwait(false), cancellationToken);

    public SliceUploadLayout? SliceUploads { get; }

    public async Task<SliceUploadOutcome> AcceptMaskedInputSliceAsync(int sender, int slice, string sha256, SliceWordsReader words, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(words);
        const ProtocolStage stage = ProtocolStage.MaskedInputCollection;
        if (SliceUploads is null)
        {
            throw new ProtocolViolationException(stage, "this round takes the masked input whole (protocol version 3); it announced no slices", sender);
        }

        await CheckMaySendAsync(sender, cancellationToken).ConfigureAwait(false);
        Grains.ISliceGrain grain = _client.Slice(slice);
        long upload = await SliceCallAsync(sender, slice, () => _client.AbortIfSliceFailedAsync(grain.BeginChunkAsync(sender, sha256)), cancellationToken).ConfigureAwait(false);
        bool ended = false;
        try
        {
            // Each piece is passed to the slice grain (on this silo: without a copy) and awaited before the next is read.
            SliceUploadRefusal? refusal = await words(async (piece, offset) =>
            {
                uint[] array = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(piece, out ArraySegment<uint> segment) && segment.Offset == 0
                    ? segment.Array!
                    : piece.ToArray();
                await SliceCallAsync(sender, slice, async () =>
                {
                    await _client.AbortIfSliceFailedAsync(grain.AddPieceAsync(sender, upload, offset, new Orleans.Concurrency.Immutable<uint[]>(array), piece.Length)).ConfigureAwait(false);
                    return true;
                }, cancellationToken).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
            if (refusal is not null)
            {
                return new SliceUploadOutcome(false, refusal);
            }

            bool fresh;
            try
            {
                fresh = await _client.AbortIfSliceFailedAsync(grain.EndChunkAsync(sender, upload)).WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ClusterProtocolException ex) when (ex.Message.Contains("SHA-256", StringComparison.Ordinal))
            {
                ended = true; // the grain dropped the upload
                return new SliceUploadOutcome(false, SliceUploadReader.DigestMismatch(slice));
            }

            ended = true;

            // The slice holds the chunk: telling the round runs to its answer whatever the caller's token (AcceptAsync).
            await SliceCallAsync(sender, slice, () => _client.Round.SliceDeliveredAsync(sender, slice, sha256), CancellationToken.None).ConfigureAwait(false);
            return new SliceUploadOutcome(fresh, null);
        }
        finally
        {
            if (!ended)
            {
                // Refused, or the stream broke off (the caller hears the stream's own error): the words added so far leave the sum.
                grain.AbandonChunkAsync(sender, upload).Ignore();
            }
        }
    }

    /// <summary>A call to the cluster for a slice upload, its failures mapped as for the other messages (a slice that cannot be reached aborts the round).</summary>
    private static async Task<T> SliceCallAsync<T>(int sender, int slice, Func<Task<T>> call, CancellationToken cancellationToken)
    {
        const ProtocolStage stage = ProtocolStage.MaskedInputCollection;
        try
        {
            return await CallAsync(stage, call, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not (ProtocolViolationException or RoundAbortedException or OperationCanceledException))
        {
            throw new RoundAbortedException(stage, $"the cluster could not take slice {slice} of the masked input of index {sender}: {ex.GetType().Name}: {FirstLine(ex.Message)}");
        }
    }

    public async Task<string?> SliceElsewhereAsync(int slice, CancellationToken cancellationToken)
    {
        if (_localSilo is null || SliceUploads is null || slice < 0 || slice >= SliceUploads.Count)
        {
            return null;
        }

        string host = await _client.Slice(slice).SiloAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        return string.Equals(host, _localSilo, StringComparison.Ordinal) ? null : SliceUploads.Endpoints[slice];
    }

    public async Task<IReadOnlyList<string>> SliceDigestsAsync(int sender, CancellationToken cancellationToken)
    {
        const ProtocolStage stage = ProtocolStage.MaskedInputCollection;
        try
        {
            return await CallAsync<IReadOnlyList<string>>(stage, async () => await _client.Round.SliceDigestsAsync(sender).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not (ProtocolViolationException or RoundAbortedException or OperationCanceledException))
        {
            throw new RoundAbortedException(stage, $"the cluster could not report the slice digests of index {sender}: {ex.GetType().Name}: {FirstLine(ex.Message)}");
        }
    }

    public async Task AcceptMaskedInputAsync(int sender, ReadOnlyMemory<uint> maskedInput, CancellationToken cancellationToken)
    {
        const ProtocolStage stage = ProtocolStage.MaskedInputCollection;
        await CheckMaySendAsync(sender, cancellationToken).ConfigureAwait(false);
        try
        {
            await AcceptAsync(stage, async () =>
            {
                await _client.SendMaskedInputAsync(sender, maskedInput, CancellationToken.None).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not (ProtocolViolationException or RoundAbortedException or OperationCanceledException))
        {
            // A slice grain could not be reached (its silo failed): whatever that slice held is gone, so the sums can no
            // longer agree; the round ends now with the reason instead of at the stage's deadline.
            throw new RoundAbortedException(stage, $"the cluster could not take the masked input of index {sender}: {ex.GetType().Name}: {FirstLine(ex.Message)}");
        }
    }

    /// <summary>
    /// The single process's checks, in its order, before any slice is touched: a site that may not send (wrong stage, not
    /// in U2, already in U3) never leaves a chunk in a slice grain.
    /// </summary>
    private async Task CheckMaySendAsync(int sender, CancellationToken cancellationToken)
    {
        RoundServerStatus status = await StatusAsync(cancellationToken).ConfigureAwait(false);
        const ProtocolStage stage = ProtocolStage.MaskedInputCollection;
        if (sender < 1 || sender > _participants.Count)
        {
            throw new ProtocolViolationException(stage, $"index {sender} is not a member of the cohort", sender);
        }

        if (status.Stage != stage)
        {
            throw new ProtocolViolationException(stage, $"message for stage {stage} is out of order: the round is at stage {status.Stage}", sender);
        }

        if (!status.Expected.Contains(sender))
        {
            throw new ProtocolViolationException(stage, "did not complete ShareKeys in this round", sender);
        }

        if (status.Delivered.Contains(sender))
        {
            throw new ProtocolViolationException(stage, "already sent its masked input", sender);
        }
    }

    /// <summary>The first line of a message (Orleans' messages may carry a stack trace).</summary>
    internal static string FirstLine(string message)
    {
        int end = message.IndexOfAny(['\r', '\n']);
        return end < 0 ? message : message[..end];
    }

    public Task<IReadOnlyList<int>> CloseMaskedInputAsync(CancellationToken cancellationToken)
        => CloseAsync<IReadOnlyList<int>>(ProtocolStage.MaskedInputCollection, async () => await _client.Round.CloseMaskedInputAsync().ConfigureAwait(false), cancellationToken);

    public Task<bool> AcceptConsistencySignatureAsync(ConsistencySignature signature, CancellationToken cancellationToken)
        => AcceptAsync(ProtocolStage.ConsistencyCheck, () => _client.Round.AcceptConsistencySignatureAsync(signature));

    public Task<UnmaskRequest> CloseConsistencyAsync(CancellationToken cancellationToken)
        => CloseAsync(ProtocolStage.ConsistencyCheck, () => _client.Round.CloseConsistencyAsync(), cancellationToken);

    public Task<bool> AcceptUnmaskResponseAsync(UnmaskResponse response, CancellationToken cancellationToken)
        => AcceptAsync(ProtocolStage.Unmasking, () => _client.Round.AcceptUnmaskResponseAsync(response));

    public Task<string?> UnmaskingShortfallAsync(int awaited, CancellationToken cancellationToken)
        => CallAsync(ProtocolStage.Unmasking, () => _client.Round.UnmaskingShortfallAsync(awaited), cancellationToken);

    public async Task<AggregationResult> FinishAsync(CancellationToken cancellationToken)
    {
        AggregationResult result = await CloseAsync(ProtocolStage.Unmasking, () => _client.FinishAsync(cancellationToken), cancellationToken).ConfigureAwait(false);

        // The cluster's ledger (PostgreSQL) records the sum's digest; the coordinator's store and audit log record the model.
        await _client.RecordAsync(_sessionId, result, _participants, null, cancellationToken).ConfigureAwait(false);
        return result;
    }

    /// <summary>
    /// The coordinator's end of the round (<see cref="RoundCoordinator"/>): the unmasked sum stays in the slice grains and is
    /// read a slice at a time; once it was read, the cluster's ledger records its SHA-256, as <see cref="FinishAsync"/> does.
    /// </summary>
    public async Task<SlicedRoundResult> FinishBySliceAsync(CancellationToken cancellationToken)
    {
        ClusterRoundResult result = await CloseAsync(ProtocolStage.Unmasking, () => _client.Round.FinishAsync(), cancellationToken).ConfigureAwait(false);
        _unmasked = result.Layout;
        var sum = new SlicedClusterSum(_client, result.Layout,
            (sha, ct) => _client.RecordCompletedAsync(_sessionId, sha, result.Contributors, _participants, ct));
        return new SlicedRoundResult(result.Contributors, result.RejectedShares, new GuardedSum(sum));
    }

    /// <summary>A sliced sum whose cluster failures become the protocol's exceptions, as every other call here.</summary>
    private sealed class GuardedSum(SlicedClusterSum sum) : UnmaskedSum
    {
        public override int Length => sum.Length;

        public override bool RecordsDigest => sum.RecordsDigest;

        public override Task<uint[]> TailAsync(int offset, CancellationToken cancellationToken)
            => CallAsync(ProtocolStage.Unmasking, () => sum.TailAsync(offset, cancellationToken), cancellationToken);

        public override Task ReadInOrderAsync(SumPieceHandler consume, CancellationToken cancellationToken)
            => CallAsync(ProtocolStage.Unmasking, async () =>
            {
                await sum.ReadInOrderAsync(consume, cancellationToken).ConfigureAwait(false);
                return true;
            }, cancellationToken);

        public override Task RecordAsync(string sumSha256, CancellationToken cancellationToken)
            => CallAsync(ProtocolStage.Unmasking, async () =>
            {
                await sum.RecordAsync(sumSha256, cancellationToken).ConfigureAwait(false);
                return true;
            }, cancellationToken);
    }

    public async Task AbortAsync(string reason, CancellationToken cancellationToken)
    {
        _last = _last with { Stage = ProtocolStage.Aborted };
        if (_unmasked is { } layout)
        {
            await EndUnmaskedSlicesAsync(layout, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            // The round grain stops the round and records the abort in the ledger.
            await _client.Round.AbortAsync(reason).WaitAsync(AbortWait, cancellationToken).ConfigureAwait(false);
            return;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The round grain lost its round with its silo (it says so), its silo cannot be reached, or the ledger could
            // not be reached from it: record the abort in the ledger from here.
            Log.AbortNotDelivered(_logger, _client.RoundKey, FirstLine(ex.Message));
        }

        await RecordAbortAsync(reason, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The coordinator gives up a round whose sum was unmasked (e.g. its total weight W out of its bound, read from the
    /// sum's tail alone, C7): its round grain refuses the abort (a completed round's sum stays, so that a late upload cannot
    /// discard it under a reader), and only the reader ends a slice, after reading it. Every slice is ended here instead:
    /// before, the slices of such an attempt kept the whole unmasked vector in the silos' memory for
    /// <see cref="Grains.RoundGrainOptions.KeptWhileOpen"/> (30 hours), one more vector for every attempt a hostile site made
    /// abort so. Best effort within <see cref="AbortWait"/>: a slice that cannot be reached has lost its sum anyway, and
    /// ending one already read and ended only activates an empty grain that goes at once.
    /// </summary>
    private async Task EndUnmaskedSlicesAsync(SliceLayout layout, CancellationToken cancellationToken)
    {
        try
        {
            await Task.WhenAll(Enumerable.Range(0, layout.Count).Select(k => _client.Slice(k).EndAsync())).WaitAsync(AbortWait, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.UnmaskedSlicesNotEnded(_logger, _client.RoundKey, FirstLine(ex.Message));
        }
    }

    /// <summary>
    /// Records the abort in the ledger from the driver, trying again for up to <see cref="LedgerWait"/> while the cluster
    /// recovers: the ledger grain may have lived on the silo that failed, and is reached again (reactivated on a silo
    /// left, from its stored state) once membership has declared that silo dead. A retry of an abort that did reach the
    /// ledger is a no-op there; a different outcome already recorded is not retried.
    /// </summary>
    private async Task RecordAbortAsync(string reason, CancellationToken cancellationToken)
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                await _client.RecordAsync(_sessionId, null, _participants, reason, cancellationToken).WaitAsync(AbortWait, cancellationToken).ConfigureAwait(false);
                if (attempt > 1)
                {
                    Log.AbortRecorded(_logger, _client.RoundKey, attempt);
                }

                return;
            }
            catch (ClusterProtocolException ex)
            {
                Log.AbortNotRecorded(_logger, _client.RoundKey, attempt, FirstLine(ex.Message));
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                if (System.Diagnostics.Stopwatch.GetElapsedTime(started) + LedgerRetryDelay >= LedgerWait)
                {
                    Log.AbortNotRecorded(_logger, _client.RoundKey, attempt, FirstLine(ex.Message));
                    return;
                }

                if (attempt == 1)
                {
                    Log.AbortRecordRetrying(_logger, _client.RoundKey, FirstLine(ex.Message));
                }
            }

            await Task.Delay(LedgerRetryDelay, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A stage-closing call: on success the last known stage moves on (for displays and the announcement's long-poll).</summary>
    private async Task<T> CloseAsync<T>(ProtocolStage stage, Func<Task<T>> call, CancellationToken cancellationToken)
    {
        T result = await CallAsync(stage, call, cancellationToken).ConfigureAwait(false);
        _last = _last with { Stage = stage + 1 };
        return result;
    }

    /// <summary>
    /// A call that hands the round grain a site's message: it runs to the grain's answer whatever the caller's token, as
    /// in a single process (<see cref="LocalRoundServer"/> ignores the token). Abandoned once the grain had the message
    /// (the site reset its stream or its deadline passed), the message would be in the round while the caller never
    /// wrote its audit line or recorded its digest, and every retry is a duplicate, which is not audited. Orleans'
    /// response timeout still bounds the wait.
    /// </summary>
    private static Task<T> AcceptAsync<T>(ProtocolStage stage, Func<Task<T>> call) => CallAsync(stage, call, CancellationToken.None);

    private static async Task<T> CallAsync<T>(ProtocolStage stage, Func<Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await call().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ClusterProtocolException ex)
        {
            throw Violation(stage, ex.Message);
        }
        catch (ClusterRoundAbortedException ex)
        {
            throw Aborted(stage, ex.Message);
        }
    }

    /// <summary>
    /// The <see cref="RoundAbortedException"/> for the round grain's abort message: the protocol's "round aborted at
    /// Stage: reason" keeps the reason only, and "round aborted at Stage: party i at fault: reason" (a dealer shown at
    /// fault, <see cref="RoundAbortedException.AtFault"/>) keeps the party too, so the coordinator blames and excludes it
    /// as in a single process; "parties i,j,k suspected: reason" keeps <see cref="RoundAbortedException.Suspects"/> for
    /// the coordinator's search by elimination.
    /// </summary>
    internal static RoundAbortedException Aborted(ProtocolStage stage, string message)
    {
        Match match = AbortPattern().Match(message);
        int? atFault = match.Success && match.Groups["party"].Success
            ? int.Parse(match.Groups["party"].Value, System.Globalization.CultureInfo.InvariantCulture)
            : null;
        int[]? suspects = match.Success && match.Groups["suspects"].Success
            ? [.. match.Groups["suspects"].Value.Split(',').Select(p => int.Parse(p, System.Globalization.CultureInfo.InvariantCulture))]
            : null;
        return new RoundAbortedException(stage, match.Success ? match.Groups["reason"].Value : message, atFault, suspects);
    }

    /// <summary>
    /// The <see cref="ProtocolViolationException"/> the round grain's state machine threw (its message crossed the silo
    /// as "Stage: party i: reason"), or one for <paramref name="stage"/> with the cluster's message.
    /// </summary>
    internal static ProtocolViolationException Violation(ProtocolStage stage, string message)
    {
        Match match = ViolationPattern().Match(message);
        if (match.Success && Enum.TryParse(match.Groups["stage"].Value, out ProtocolStage thrown))
        {
            int? party = match.Groups["party"].Success ? int.Parse(match.Groups["party"].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
            return new ProtocolViolationException(thrown, match.Groups["reason"].Value, party);
        }

        return new ProtocolViolationException(stage, message);
    }

    [GeneratedRegex(@"^(?<stage>[A-Za-z]+): (party (?<party>\d+): )?(?<reason>.*)$", RegexOptions.Singleline)]
    private static partial Regex ViolationPattern();

    [GeneratedRegex(@"^round aborted at [A-Za-z]+: (party (?<party>\d+) at fault: |parties (?<suspects>\d+(,\d+)*) suspected: )?(?<reason>.*)$", RegexOptions.Singleline)]
    private static partial Regex AbortPattern();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Cluster round {Round}: the round grain did not record the abort ({Reason}); recording it in the ledger directly")]
        public static partial void AbortNotDelivered(ILogger logger, string round, string reason);

        [LoggerMessage(2, LogLevel.Warning, "Cluster round {Round}: the ledger could not be reached to record the abort ({Reason}); trying again while the cluster recovers")]
        public static partial void AbortRecordRetrying(ILogger logger, string round, string reason);

        [LoggerMessage(3, LogLevel.Information, "Cluster round {Round}: the abort is recorded in the ledger (attempt {Attempt})")]
        public static partial void AbortRecorded(ILogger logger, string round, int attempt);

        [LoggerMessage(4, LogLevel.Error, "Cluster round {Round}: the abort could not be recorded in the ledger (attempt {Attempt}): {Reason}")]
        public static partial void AbortNotRecorded(ILogger logger, string round, int attempt, string reason);

        [LoggerMessage(5, LogLevel.Warning, "Cluster round {Round}: the slices of the given-up sum could not all be ended ({Reason}); those not reached go with their silo or at the open round's bound")]
        public static partial void UnmaskedSlicesNotEnded(ILogger logger, string round, string reason);
    }
}
