using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Wire.V1;

namespace SecureFed.Cluster.Front;

/// <summary>
/// The gRPC service of a silo that is not the coordinator (docs/cluster.md §6). Protocol-version-4 slice uploads for a
/// slice this silo hosts are taken here: the caller is identified by its mTLS certificate as the coordinator does
/// (<see cref="ForwardedIdentity"/>); the round, session, cohort, stage and slice are checked by the round grain
/// (<see cref="SliceAdmission"/>); the slice is streamed into the local slice grain one gRPC chunk at a time (never
/// buffered whole), which checks it against its SHA-256, and the round grain records the slice and its digest. Every
/// other call — the control stages, the model download, a whole-vector upload — is forwarded to the current coordinator
/// (<see cref="SliceFront.Coordinator"/>, <see cref="CoordinatorForwarder"/>) for the site the certificate identifies,
/// and the coordinator makes every check; without a forwarder those calls answer Unimplemented (and whole vectors are
/// refused), as before.
/// Every refusal is a gRPC status with the reason, and is logged within the site's share of refusal lines
/// (<see cref="FrontRefusalLog"/>: beyond it, counted and summarised; the audit log is the coordinator's).
/// </summary>
[BindServiceMethod(typeof(SiloFrontService), nameof(BindService))]
internal sealed partial class SiloFrontService : Wire.V1.Aggregation.AggregationBase
{
    private static readonly TimeSpan GrainTimeout = TimeSpan.FromSeconds(30);
    private readonly SliceFront _front;
    private readonly FrontRefusalLog _refusals;
    private readonly ILogger<SiloFrontService> _logger;
    private readonly CancellationToken _stopping;

    /// <summary>
    /// The service; <paramref name="lifetime"/>'s <c>ApplicationStopping</c> ends the long polls being forwarded when the front
    /// stops, and every other forwarded call still running <see cref="CoordinatorForwarder.StopGrace"/> later
    /// (<see cref="CoordinatorForwarder"/>).
    /// </summary>
    public SiloFrontService(SliceFront front, FrontRefusalLog refusals, ILogger<SiloFrontService> logger, IHostApplicationLifetime lifetime)
    {
        _front = front;
        _refusals = refusals;
        _logger = logger;
        _stopping = lifetime.ApplicationStopping;
    }

    /// <summary>
    /// Binds the methods with request deserializers that answer malformed bytes with InvalidArgument (as the
    /// coordinator's service does) instead of Unknown.
    /// </summary>
    public static void BindService(ServiceBinderBase binder, Wire.V1.Aggregation.AggregationBase? service)
        => Wire.V1.Aggregation.BindService(new CheckedRequestBinder(binder), service!);

    public override Task<RoundAnnouncement> AwaitRound(AwaitRoundRequest request, ServerCallContext context)
        => PollAsync(context, request, (c, o) => c.AwaitRoundAsync(request, o));

    public override Task<Ack> DeclineRound(DeclineRoundRequest request, ServerCallContext context)
        => ForwardAsync(context, request, (c, o) => c.DeclineRoundAsync(request, o));

    public override Task<Ack> ReportProgress(ProgressReport request, ServerCallContext context)
        => ForwardAsync(context, request, (c, o) => c.ReportProgressAsync(request, o));

    public override Task<Ack> AdvertiseKeys(AdvertiseKeysRequest request, ServerCallContext context)
        => ForwardAsync(context, request, (c, o) => c.AdvertiseKeysAsync(request, o));

    public override Task<AdvertisementSet> AwaitAdvertisements(StageQuery request, ServerCallContext context)
        => PollAsync(context, request, (c, o) => c.AwaitAdvertisementsAsync(request, o));

    public override Task<Ack> ShareKeys(ShareKeysRequest request, ServerCallContext context)
        => ForwardAsync(context, request, (c, o) => c.ShareKeysAsync(request, o));

    public override Task<ShareSet> AwaitShares(StageQuery request, ServerCallContext context)
        => PollAsync(context, request, (c, o) => c.AwaitSharesAsync(request, o));

    public override Task<SurvivorSet> AwaitSurvivors(StageQuery request, ServerCallContext context)
        => PollAsync(context, request, (c, o) => c.AwaitSurvivorsAsync(request, o));

    public override Task<Ack> SignSurvivors(ConsistencyRequest request, ServerCallContext context)
        => ForwardAsync(context, request, (c, o) => c.SignSurvivorsAsync(request, o));

    public override Task<UnmaskRequestMessage> AwaitUnmaskRequest(StageQuery request, ServerCallContext context)
        => PollAsync(context, request, (c, o) => c.AwaitUnmaskRequestAsync(request, o));

    public override Task<Ack> Unmask(UnmaskResponseMessage request, ServerCallContext context)
    {
        // Counted and measured here, before the request is forwarded (the coordinator checks against the round's cohort):
        // at most one share per site of the federation, each value 40 bytes (PROTOCOL.md §3, "Refusals" 12′).
        int sites = _front.Kit.Manifest.Sites.Count;
        if (AggregationService.UnmaskShapeProblem(request, sites, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{sites} in this federation")) is string problem)
        {
            throw Refuse(Identify(context), StatusCode.InvalidArgument, problem);
        }

        return ForwardAsync(context, request, (c, o) => c.UnmaskAsync(request, o));
    }

    public override Task<RoundOutcome> AwaitRoundOutcome(StageQuery request, ServerCallContext context)
        => PollAsync(context, request, (c, o) => c.AwaitRoundOutcomeAsync(request, o));

    public override Task<FederationStatus> GetStatus(StatusRequest request, ServerCallContext context)
        => ForwardAsync(context, request, (c, o) => c.GetStatusAsync(request, o));

    public override Task DownloadModel(ModelRequest request, IServerStreamWriter<ModelChunk> responseStream, ServerCallContext context)
        => Forwarder(context).ServerStreamAsync(Identify(context), context, request, (c, o) => c.DownloadModel(request, o), responseStream, _stopping);

    public override async Task<Ack> UploadMaskedInput(IAsyncStreamReader<MaskedInputChunk> requestStream, ServerCallContext context)
    {
        string site = Identify(context);
        CancellationToken ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct).ConfigureAwait(false))
        {
            throw Refuse(site, StatusCode.InvalidArgument, "the masked-input stream is empty");
        }

        MaskedInputChunk first = requestStream.Current;
        if (!first.HasSlice && _front.Coordinator is CoordinatorForwarder forwarder)
        {
            // A whole vector (protocol version 3): the coordinator takes it, streamed through chunk by chunk; it checks everything.
            return await forwarder.UploadAsync(site, context, first, requestStream, _stopping).ConfigureAwait(false);
        }

        Header? header = first.Header;
        if (header is null)
        {
            throw Refuse(site, StatusCode.InvalidArgument, "the first masked-input chunk must carry the header");
        }

        // As the coordinator's service: over-long identifiers are refused by their length; none reaches the log unbounded.
        foreach ((string field, string value) in (ReadOnlySpan<(string, string)>)[("federation_id", header.FederationId), ("sender", header.Sender), ("session_id", header.SessionId)])
        {
            if (value.Length > AuditText.IdentifierChars)
            {
                throw Refuse(site, StatusCode.InvalidArgument, $"the header's {field} has {value.Length} characters; the limit is {AuditText.IdentifierChars}");
            }
        }

        if (header.FederationId != _front.Federation)
        {
            throw Refuse(site, StatusCode.InvalidArgument, $"the message is for federation '{AuditText.Bound(header.FederationId, AuditText.IdentifierChars)}'; this aggregator serves '{_front.Federation}'");
        }

        if (header.Sender != site)
        {
            throw Refuse(site, StatusCode.PermissionDenied, $"the header names sender '{AuditText.Bound(header.Sender, AuditText.IdentifierChars)}' but the client certificate belongs to '{site}'");
        }

        if (header.Stage != Stage.MaskedInput)
        {
            throw Refuse(site, StatusCode.InvalidArgument, $"{context.Method}: the header's stage is {header.Stage}; this call carries STAGE_MASKED_INPUT");
        }

        if (!first.HasSlice)
        {
            throw Refuse(site, StatusCode.FailedPrecondition,
                "this silo takes slices of the masked input only (protocol version 4: the first chunk names its slice); send the whole vector to the coordinator");
        }

        // Any call to a round grain activates it: a round this silo opened no slice of (never opened here, long over, or not
        // yet opened) is refused here, before any grain is called, so a site naming round after round costs no activation.
        long round = (long)Math.Min(header.Round, long.MaxValue);
        if (_front.Rounds is SiloRounds opened ? !opened.Has(_front.Federation, round) : round < 1)
        {
            throw Refuse(site, StatusCode.FailedPrecondition,
                $"round {round} is not open at this silo (no slice of it was opened here, or it is long over); stale messages are refused");
        }

        var grains = new ClusterRoundClient(_front.Grains, _front.Federation, round);
        SliceAdmission admission = await grains.Round.AdmitSliceAsync(round, header.SessionId, site, first.Slice).WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
        if (!admission.Admitted)
        {
            throw Refuse(site, Code(admission.Refusal), admission.Reason ?? admission.Refusal.ToString());
        }

        int slice = (int)first.Slice;
        string host = await grains.Slice(slice).SiloAsync().WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
        if (!string.Equals(host, _front.SiloAddress, StringComparison.Ordinal))
        {
            string endpoint = await grains.Slice(slice).EndpointAsync().WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
            throw Refuse(site, StatusCode.FailedPrecondition, $"slice {slice} is not hosted by this silo; upload it to {(endpoint.Length > 0 ? endpoint : "the endpoint the round announcement names")}");
        }

        SliceUploadRefusal? refusal = SliceUploadReader.CheckFirst(first, slice, admission.Length);
        if (refusal is not null)
        {
            throw Refuse(site, refusal.Code, refusal.Reason);
        }

        // As the coordinator's: a site reads one upload at a time, and every wait and read of this upload ends when the
        // masked-input stage closes (the round grain is asked every StageCheckInterval), so a stalled stream holds its
        // site's one slot no longer than that.
        using var upload = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task watching = WatchStageAsync(grains.Round, upload);
        try
        {
            int waiting = Math.Max(1, admission.Slices);
            using IDisposable slot = await _front.AcquireUploadAsync(site, waiting, upload.Token).ConfigureAwait(false)
                ?? throw Refuse(site, StatusCode.ResourceExhausted,
                    $"site '{site}' already has {waiting + 1} masked-input uploads open at this silo (one is read at a time, at most {waiting} wait); refused");
            if (await StagePassedAsync(grains.Round, upload.Token).ConfigureAwait(false))
            {
                // The stage closed while this upload waited for its site's turn (before the stage check saw it); the
                // slice may already have been read and ended.
                throw Refuse(site, StatusCode.FailedPrecondition, $"the masked-input stage of round {round} closed before this upload finished");
            }

            string sha = first.Sha256.ToLowerInvariant();
            // From now on it must keep up (UploadPace); its words keep their credit only if the slice is accepted as fresh.
            using PacedUpload paced = _front.Pace.Watch(requestStream, header.SessionId, site, first.Words.Count);
            bool fresh = await StreamToSliceAsync(site, grains, admission.Index, slice, admission.Length, sha, first, paced, upload.Token).ConfigureAwait(false);
            if (fresh)
            {
                _front.Accepted();
            }

            Log.Accepted(_logger, site, round, slice, admission.Length, fresh);
            return new Ack { Duplicate = !fresh };
        }
        catch (UploadTooSlowException ex)
        {
            throw Refuse(site, StatusCode.ResourceExhausted, ex.Message);
        }
        catch (OperationCanceledException) when (upload.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw Refuse(site, StatusCode.FailedPrecondition, $"the masked-input stage of round {round} closed before this upload finished");
        }
        finally
        {
            await upload.CancelAsync().ConfigureAwait(false);
            await watching.ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Asks the round grain every <see cref="SliceFront.StageCheckInterval"/> whether the round is still collecting masked
    /// inputs, and cancels <paramref name="upload"/> when it is not (the stage closed, the round ended or its grain lost
    /// it). Ends when <paramref name="upload"/> is cancelled; a check that fails (the grain unreachable for a moment) is
    /// tried again at the next interval.
    /// </summary>
    private async Task WatchStageAsync(Grains.IRoundGrain round, CancellationTokenSource upload)
    {
        CancellationToken token = upload.Token;
        try
        {
            while (true)
            {
                await Task.Delay(_front.StageCheckInterval, _front.Time, token).ConfigureAwait(false);
                ClusterRoundStatus status;
                try
                {
                    status = await round.StatusAsync().WaitAsync(GrainTimeout, token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    continue;
                }

                if (status.Stage != nameof(SecureFed.Protocol.ProtocolStage.MaskedInputCollection))
                {
                    await upload.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The upload ended (or the call did).
        }
    }

    /// <summary>
    /// Whether the round went past its masked-input stage without aborting (consistency check, unmasking or completed). False
    /// while the stage is open, after an abort, or when the round grain cannot be asked; a cancelled wait throws.
    /// </summary>
    private static async Task<bool> StagePassedAsync(Grains.IRoundGrain round, CancellationToken ct)
    {
        try
        {
            ClusterRoundStatus status = await round.StatusAsync().WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
            return status.Stage is nameof(SecureFed.Protocol.ProtocolStage.ConsistencyCheck)
                or nameof(SecureFed.Protocol.ProtocolStage.Unmasking)
                or nameof(SecureFed.Protocol.ProtocolStage.Completed);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException && !(ex is OperationCanceledException && ct.IsCancellationRequested))
        {
            return false;
        }
    }

    /// <summary>
    /// Streams the slice into the local slice grain <see cref="SliceUploadReader.MaxChunkWords"/> words at a time, gathered from
    /// the gRPC chunks (at most that many words in this process per upload): the grain checks, spills and adds each piece as it comes and checks the SHA-256 at
    /// the end; an upload that breaks off is abandoned (its words leave the sum). Then the round grain records the slice.
    /// Returns false for an identical retry.
    /// </summary>
    private async Task<bool> StreamToSliceAsync(string site, ClusterRoundClient grains, int sender, int slice, int length, string sha, MaskedInputChunk first, PacedUpload paced, CancellationToken ct)
    {
        IAsyncStreamReader<MaskedInputChunk> requestStream = paced.Reader;
        Grains.ISliceGrain grain = grains.Slice(slice);
        long upload = -1;
        bool ended = false;
        try
        {
            upload = await grains.AbortIfSliceFailedAsync(grain.BeginChunkAsync(sender, sha)).WaitAsync(GrainTimeout, ct).ConfigureAwait(false);

            // The chunks' words are gathered in the reader's one pooled buffer and passed on MaxChunkWords at a time (or at the
            // end), however small the sender cut its chunks: one grain call and one spill write per full buffer, not per chunk.
            // A buffer still with the grain when its call fails (timed out) is left to the collector by the reader, never reused.
            SliceUploadRefusal? refusal = await SliceUploadReader.StreamAsync(first, requestStream, length, slice, async (ReadOnlyMemory<uint> words, int offset) =>
            {
                uint[] array = System.Runtime.InteropServices.MemoryMarshal.TryGetArray(words, out ArraySegment<uint> segment) && segment.Offset == 0
                    ? segment.Array!
                    : words.ToArray();
                await grains.AbortIfSliceFailedAsync(grain.AddPieceAsync(sender, upload, offset, new Orleans.Concurrency.Immutable<uint[]>(array), words.Length))
                    .WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);
            if (refusal is not null)
            {
                throw Refuse(site, refusal.Code, refusal.Reason);
            }

            _front.Received(length);
            bool fresh = await grains.AbortIfSliceFailedAsync(grain.EndChunkAsync(sender, upload)).WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
            ended = true;
            if (fresh)
            {
                // The slice grain took it: its words keep their credit even if telling the round grain fails below (the
                // agent's retry is then a duplicate, which earns nothing).
                paced.Accepted();
            }

            await grains.Round.SliceDeliveredAsync(sender, slice, sha).WaitAsync(GrainTimeout, ct).ConfigureAwait(false);
            return fresh;
        }
        catch (ClusterProtocolException ex)
        {
            if (ex.Message.Contains("SHA-256", StringComparison.Ordinal))
            {
                throw Refuse(site, StatusCode.DataLoss, $"slice {slice} does not match the SHA-256 announced in its first chunk");
            }

            if (ex.Message.Contains("masked-input stage of slice", StringComparison.Ordinal))
            {
                // The slice closed while this upload waited for its site's turn (before the stage check saw it).
                throw Refuse(site, StatusCode.FailedPrecondition, $"the masked-input stage of round {grains.RoundNumber} closed before this upload finished");
            }

            if (await StagePassedAsync(grains.Round, CancellationToken.None).ConfigureAwait(false))
            {
                // The slice took the words but the round grain had closed the stage before it recorded them (the round is
                // at its consistency check or later): the upload was late, not malformed.
                throw Refuse(site, StatusCode.FailedPrecondition, $"the masked-input stage of round {grains.RoundNumber} closed before this upload finished");
            }

            throw Refuse(site, ex.Message.Contains("already sent", StringComparison.Ordinal) ? StatusCode.AlreadyExists : StatusCode.InvalidArgument, ex.Message);
        }
        catch (ClusterRoundAbortedException ex)
        {
            if (await StagePassedAsync(grains.Round, CancellationToken.None).ConfigureAwait(false))
            {
                // The round went on without this upload and its slice was read and ended (a slice grain that ended has
                // no state): the stage closed, the round did not abort.
                throw Refuse(site, StatusCode.FailedPrecondition, $"the masked-input stage of round {grains.RoundNumber} closed before this upload finished");
            }

            throw Refuse(site, StatusCode.Aborted, $"round {grains.RoundNumber} ended: {ex.Message}");
        }
        finally
        {
            if (upload >= 0 && !ended)
            {
                // The stream broke off or was refused: the words added so far leave the sum now (the close of the stage
                // would subtract them otherwise).
                grain.AbandonChunkAsync(sender, upload).Ignore();
            }
        }
    }

    internal static StatusCode Code(SliceRefusalKind kind) => kind switch
    {
        SliceRefusalKind.StaleOrReplay or SliceRefusalKind.WrongStage or SliceRefusalKind.WholeInputsOnly => StatusCode.FailedPrecondition,
        SliceRefusalKind.NotInCohort => StatusCode.PermissionDenied,
        SliceRefusalKind.AlreadySent => StatusCode.AlreadyExists,
        _ => StatusCode.InvalidArgument,
    };

    /// <summary>A submission or the status: when the front stops, left to finish for up to <see cref="CoordinatorForwarder.StopGrace"/>.</summary>
    private Task<T> ForwardAsync<T>(ServerCallContext context, IMessage request, Func<Wire.V1.Aggregation.AggregationClient, CallOptions, AsyncUnaryCall<T>> call)
        where T : IMessage
        => Forwarder(context).UnaryAsync(Identify(context), context, request, call, poll: false, _stopping);

    /// <summary>A long poll (it waits for the coordinator's state to change): ended at once when the front stops.</summary>
    private Task<T> PollAsync<T>(ServerCallContext context, IMessage request, Func<Wire.V1.Aggregation.AggregationClient, CallOptions, AsyncUnaryCall<T>> call)
        where T : IMessage
        => Forwarder(context).UnaryAsync(Identify(context), context, request, call, poll: true, _stopping);

    private CoordinatorForwarder Forwarder(ServerCallContext context)
        => _front.Coordinator ?? throw new RpcException(new Status(StatusCode.Unimplemented, $"{context.Method}: this silo serves slice uploads only"));

    /// <summary>
    /// The caller's site by the same rule as the coordinator's (<see cref="ForwardedIdentity.Decide"/>); a call that is itself
    /// forwarded (the aggregator's certificate with the header) is refused here: silos forward to the coordinator only.
    /// </summary>
    private string Identify(ServerCallContext context)
    {
        CallerIdentity caller = ForwardedIdentity.Decide(context.GetHttpContext().Connection.ClientCertificate,
            context.RequestHeaders.GetValue(ForwardedIdentity.SiteHeader), context.RequestHeaders.GetValue(ForwardedIdentity.SiloHeader), _front.Kit.Manifest);
        if (caller.Site is null)
        {
            throw Refuse(caller.Caller, caller.Code, caller.Reason!);
        }

        if (caller.ForwardedBy is not null)
        {
            // The lease row names this silo's address, but its aggregator service is not running here yet (a standby that has
            // just taken the lease stops its front and starts the service on the same address): retryable, never forwarded on.
            throw Refuse(caller.Caller, StatusCode.Unavailable, $"silo {caller.ForwardedBy} forwarded a call to silo {_front.SiloAddress}, whose front does not serve the coordinator's calls (a silo taking over starts the aggregator service at this address); calls are forwarded to the coordinator only, retry");
        }

        return caller.Site;
    }

    private RpcException Refuse(string site, StatusCode code, string reason)
    {
        _refusals.Refused(site, code.ToString(), reason);
        return new RpcException(new Status(code, reason));
    }

    private static partial class Log
    {
        [LoggerMessage(2, LogLevel.Debug, "Slice upload from {Site}: round {Round} slice {Slice} ({Words} words) accepted, fresh {Fresh}")]
        public static partial void Accepted(ILogger logger, string site, long round, int slice, int words, bool fresh);
    }
}
