using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SecureFed.Aggregator.Operations;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Aggregator;

/// <summary>
/// The gRPC face of the aggregator. Thin: authenticates the caller (mTLS certificate → provisioned site), checks the
/// header against the open round, converts wire messages and hands them to the protocol state machine. Every refusal
/// is a precise gRPC status, is audited, and leaves the round going for honest sites. Bytes that do not parse as the
/// method's request message are refused with <see cref="StatusCode.InvalidArgument"/> (see <see cref="BindService"/>).
/// </summary>
[BindServiceMethod(typeof(AggregationService), nameof(BindService))]
internal sealed class AggregationService : Wire.V1.Aggregation.AggregationBase
{
    /// <summary>Largest masked-input chunk accepted, in words.</summary>
    public const int MaxChunkWords = 65_536;

    private readonly RoundCoordinator _coordinator;
    private readonly AggregatorState _state;
    private readonly AggregatorOptions _options;
    private readonly ILogger<AggregationService> _logger;
    private readonly UploadLimiter _uploads;
    private readonly FederationStatusCache _statusCache;
    private readonly UploadPace _pace;
    private readonly ModelDownloadGate _downloads;
    private readonly AggregatorTelemetry _telemetry;
    private readonly RefusalAudit _refusals;

    /// <remarks>
    /// grpc-dotnet builds this service anew for every call, so whatever must outlive a call is a singleton passed in: the
    /// upload pace above all, whose accounts are per site and attempt (built here, each upload had an account of its own and
    /// a site got a fresh grace with every upload it opened; hostile-site review, session 49).
    /// </remarks>
    public AggregationService(RoundCoordinator coordinator, AggregatorState state, IOptions<AggregatorOptions> options, UploadLimiter uploads, UploadPace pace, ModelDownloadGate downloads, AggregatorTelemetry telemetry, RefusalAudit refusals, FederationStatusCache statusCache, ILogger<AggregationService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _statusCache = statusCache;
        _telemetry = telemetry;
        _refusals = refusals;
        _coordinator = coordinator;
        _state = state;
        _options = options.Value;
        _uploads = uploads;
        _pace = pace;
        _downloads = downloads;
        _logger = logger;
    }

    /// <summary>
    /// Found by grpc-dotnet through <see cref="BindServiceMethodAttribute"/> in place of the generated binder: binds the
    /// same methods with request deserializers that answer malformed bytes with InvalidArgument instead of Unknown.
    /// </summary>
    /// <remarks>
    /// The second parameter is the generated base type: grpc-dotnet resolves the handlers as overrides of it.
    /// </remarks>
    public static void BindService(ServiceBinderBase binder, Wire.V1.Aggregation.AggregationBase? service)
        => Wire.V1.Aggregation.BindService(new CheckedRequestBinder(binder), service!);

    public override async Task<RoundAnnouncement> AwaitRound(AwaitRoundRequest request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.Announce);
        RoundSession? session;
        try
        {
            session = await _coordinator.AwaitRoundAsync(site, (long)request.Header.Round, context.CancellationToken).ConfigureAwait(false);
        }
        catch (AwaitRoundSupersededException ex)
        {
            throw new RpcException(new Status(StatusCode.Aborted, ex.Message));
        }

        if (session is null)
        {
            return new RoundAnnouncement { Finished = true, Header = new Header { FederationId = _options.Federation, Sender = "aggregator", Stage = Stage.Announce } };
        }

        return session.AnnouncementFor(request.SpeaksProtocolVersion);
    }

    public override async Task<Ack> DeclineRound(DeclineRoundRequest request, ServerCallContext context)
    {
        // A plain decline answers the announcement; one with an accusation leaves the round at MaskedInputCollection.
        string site = Authenticate(context, request.Header, request.Accusation is null ? Stage.Announce : Stage.MaskedInput);
        RoundSession session = CurrentSession(request.Header, site);
        string reason = AuditText.Bound(request.Reason, AuditText.ReasonChars);
        bool accused = false;
        if (request.Accusation is not null)
        {
            if (!await JudgeAccusationOnceAsync(session, site, request.Accusation, context.CancellationToken).ConfigureAwait(false))
            {
                return new Ack { Duplicate = true }; // an identical retry of the accusation judged in this attempt
            }

            accused = true;
        }

        if (!session.Decline(site))
        {
            // The site's first decline of the attempt stands (with its reason); a repeat is answered without an audit
            // line, a log line or a wake-up, so repeating it costs the aggregator nothing on disk (threat model C19).
            return new Ack { Duplicate = !accused };
        }

        _telemetry.Declined(session.Round, site, reason);
        Log.Declined(_logger, site, session.Round, reason);
        _state.Audit.Append(AuditEvents.Refusal, f => f.Add("round", session.Round).AddSite(site).Add("reason", "site declined: " + reason));
        return new Ack();
    }

    public override Task<Ack> ReportProgress(ProgressReport request, ServerCallContext context)
    {
        // No audit line: a report reveals nothing and changes nothing but the site's last-heard time, so repeating it costs
        // the aggregator no disk (threat model C19). The first of an attempt is logged, and a site that goes silent after
        // it is audited as a dropout when the keys stage closes without it.
        string site = Authenticate(context, request.Header, Stage.AdvertiseKeys);
        RoundSession session = CurrentSession(request.Header, site);
        if (session.RecordProgress(site, _coordinator.Time.GetUtcNow()))
        {
            Log.TrainingReported(_logger, site, session.Round);
        }

        return Task.FromResult(new Ack());
    }

    public override async Task<Ack> AdvertiseKeys(AdvertiseKeysRequest request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.AdvertiseKeys);
        RoundSession session = CurrentSession(request.Header, site);
        int index = session.IndexOf(site);
        if (request.HasWeight && (request.Weight < 1 || request.Weight > session.Codec.WeightCap))
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.ProtocolViolation,
                $"the declared weight {request.Weight} is outside [1, {session.Codec.WeightCap}] (the round's weight cap)");
        }

        var ad = new KeyAdvertisement(index, request.EncryptionPublicKey.ToByteArray(), request.MaskingPublicKey.ToByteArray(), request.Signature.ToByteArray(), request.SelfMaskCommitment.ToByteArray());
        bool fresh = await GuardAsync(session, site, ct => session.Server.AcceptAdvertisementAsync(ad, ct), context.CancellationToken).ConfigureAwait(false);
        if (fresh)
        {
            if (request.HasWeight)
            {
                // The weight the site put into its slot, declared with its accepted keys: only the audited (first accepted)
                // request declares, so a later duplicate cannot add or change a declaration the trail does not show (a
                // retry whose reply was lost carries the same weight, already declared). The decoded W is checked against
                // the contributors' declarations before the sum is used (RoundCoordinator.CompleteAsync; PROTOCOL.md "The W bound").
                session.DeclareWeight(site, request.Weight);
            }

            _state.Audit.Append(AuditEvents.KeysReceived, f => f.Add("round", session.Round).AddSite(site).AddDigest("sha256", SHA256.HashData(request.ToByteArray())));
            session.Signal();
        }

        return new Ack { Duplicate = !fresh };
    }

    public override async Task<AdvertisementSet> AwaitAdvertisements(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.AdvertiseKeys);
        RoundSession session = CurrentSession(request.Header, site);
        await WaitAsync(session, ProtocolStage.AdvertiseKeys, context).ConfigureAwait(false);
        var result = new AdvertisementSet { Header = ReplyHeader(session, Stage.AdvertiseKeys) };
        foreach (KeyAdvertisement ad in await session.Server.AdvertisementsForAsync(session.IndexOf(site), context.CancellationToken).ConfigureAwait(false))
        {
            result.Advertisements.Add(new Advertisement
            {
                Sender = (uint)ad.Sender,
                EncryptionPublicKey = ByteString.CopyFrom(ad.EncryptionPublicKey),
                MaskingPublicKey = ByteString.CopyFrom(ad.MaskingPublicKey),
                Signature = ByteString.CopyFrom(ad.Signature),
                SelfMaskCommitment = ByteString.CopyFrom(ad.SelfMaskCommitment),
            });
        }

        return result;
    }

    public override async Task<Ack> ShareKeys(ShareKeysRequest request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.ShareKeys);
        RoundSession session = CurrentSession(request.Header, site);
        int index = session.IndexOf(site);
        try
        {
            // Counted before the shares are copied out of the request (and, on the cluster, sent on to the round grain).
            ServerRound.CheckShareCount(session.Parameters, index, request.Shares.Count);
        }
        catch (ProtocolViolationException ex)
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.OversizedField, "ShareKeys: shares: " + ex.Reason);
        }

        var shares = request.Shares.Select(s => new EncryptedShare((int)s.Sender, (int)s.Recipient, s.Ciphertext.ToByteArray())).ToArray();
        bool fresh = await GuardAsync(session, site, ct => session.Server.AcceptSharesAsync(index, shares, ct), context.CancellationToken).ConfigureAwait(false);
        if (fresh)
        {
            session.Signal();
        }

        return new Ack { Duplicate = !fresh };
    }

    public override async Task<ShareSet> AwaitShares(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.ShareKeys);
        RoundSession session = CurrentSession(request.Header, site);
        await WaitAsync(session, ProtocolStage.ShareKeys, context).ConfigureAwait(false);
        var result = new ShareSet { Header = ReplyHeader(session, Stage.ShareKeys) };
        foreach (EncryptedShare s in await session.Server.SharesForAsync(session.IndexOf(site), context.CancellationToken).ConfigureAwait(false))
        {
            result.Shares.Add(new EncryptedShareMessage { Sender = (uint)s.Sender, Recipient = (uint)s.Recipient, Ciphertext = ByteString.CopyFrom(s.Ciphertext) });
        }

        return result;
    }

    public override async Task<Ack> UploadMaskedInput(IAsyncStreamReader<MaskedInputChunk> requestStream, ServerCallContext context)
    {
        string site = Identify(context, null);
        if (!await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            RefuseCall(site, 0, StatusCode.InvalidArgument, RefusalReasons.MalformedUpload, "the masked-input stream is empty");
        }

        MaskedInputChunk first = requestStream.Current;
        if (first.Header is null)
        {
            RefuseCall(site, 0, StatusCode.InvalidArgument, RefusalReasons.MalformedUpload, "the first masked-input chunk must carry the header");
        }

        CheckHeader(first.Header, site, Stage.MaskedInput, context.Method);
        RoundSession session = CurrentSession(first.Header, site);

        // Every wait and read of this upload ends when the masked-input stage closes or the round ends (an upload begun after
        // the close: when the round ends), so a stream that stalls holds its slot no longer than that.
        using var upload = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, session.UploadCancellation);
        try
        {
            return first.HasSlice
                ? await UploadSliceAsync(session, site, first, requestStream, upload.Token).ConfigureAwait(false)
                : await UploadWholeAsync(session, site, first, requestStream, upload.Token).ConfigureAwait(false);
        }
        catch (UploadTooSlowException ex)
        {
            Refuse(session, site, StatusCode.ResourceExhausted, RefusalReasons.UploadTooSlow, ex.Message);
            throw; // not reached
        }
        catch (OperationCanceledException) when (upload.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            Refuse(session, site, StatusCode.FailedPrecondition, session.IsFinished ? RefusalReasons.RoundEnded : RefusalReasons.WrongStage, session.IsFinished
                ? $"round {session.Round} ended before this upload finished"
                : $"the masked-input stage of round {session.Round} closed before this upload finished");
            throw; // not reached
        }
    }

    /// <summary>A whole masked input (protocol version 3), buffered in one of the <see cref="UploadLimiter"/>'s slots.</summary>
    private async Task<Ack> UploadWholeAsync(RoundSession session, string site, MaskedInputChunk first, IAsyncStreamReader<MaskedInputChunk> requestStream, CancellationToken cancellationToken)
    {
        int m = session.Parameters.VectorLength;
        if (first.TotalWords != (uint)m)
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.MalformedUpload, $"the masked input announces {first.TotalWords} words; the round's vector length is {m}");
        }

        if (first.Sha256.Length != 64)
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.MalformedUpload, "the first chunk must carry the SHA-256 of the vector (64 hex digits)");
        }

        if (first.Words.Count > MaxChunkWords)
        {
            Refuse(session, site, StatusCode.ResourceExhausted, RefusalReasons.OversizedChunk, $"a chunk of {first.Words.Count} words exceeds the limit of {MaxChunkWords}");
        }

        // Bounded memory: at most MaxConcurrentUploads vectors are buffered at once, at most one per site; the rest wait their turn.
        using UploadLimiter.Lease lease = await AcquireSlotAsync(session, site, cancellationToken).ConfigureAwait(false);
        // From now on it must keep up (UploadPace); its words keep their credit only if it is accepted as fresh.
        using PacedUpload paced = _pace.Watch(requestStream, session.SessionId, site, first.Words.Count);
        requestStream = paced.Reader;
        uint[] buffer = ArrayPool<uint>.Shared.Rent(m);
        try
        {
            int received = 0;
            MaskedInputChunk chunk = first;
            while (true)
            {
                if (chunk.Words.Count > MaxChunkWords)
                {
                    Refuse(session, site, StatusCode.ResourceExhausted, RefusalReasons.OversizedChunk, $"a chunk of {chunk.Words.Count} words exceeds the limit of {MaxChunkWords}");
                }

                if (chunk.Words.Count == 0 && chunk != first)
                {
                    Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.MalformedUpload, $"an empty chunk at offset {chunk.Offset}: every chunk after the first must carry words");
                }

                if (chunk.Offset != (uint)received)
                {
                    Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.MalformedUpload, $"chunk at offset {chunk.Offset} arrived when {received} words had been received");
                }

                if (received + chunk.Words.Count > m)
                {
                    Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.MalformedUpload, $"the masked input is longer than the round's vector length {m}");
                }

                chunk.Words.CopyTo(buffer, received);
                received += chunk.Words.Count;
                if (!await requestStream.MoveNext(cancellationToken).ConfigureAwait(false))
                {
                    break;
                }

                chunk = requestStream.Current;
            }

            if (received != m)
            {
                Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.MalformedUpload, $"the masked input has {received} words; the round's vector length is {m}");
            }

            byte[] digest = WireEncoding.VectorDigest(buffer.AsSpan(0, m));
            if (!string.Equals(Convert.ToHexStringLower(digest), first.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                Refuse(session, site, StatusCode.DataLoss, RefusalReasons.DigestMismatch, "the masked input does not match the SHA-256 announced in its first chunk");
            }

            string sha = Convert.ToHexStringLower(digest);
            string stage = "masked_input/" + session.SessionId;
            bool fresh = await AcceptOnceAsync(session, site, "masked_input", sha, async ct =>
            {
                // The state machine checks stage, membership, length and reduction first; only an accepted vector is
                // recorded, so a refused early upload cannot make a later honest one look like a duplicate.
                await session.Server.AcceptMaskedInputAsync(session.IndexOf(site), buffer.AsMemory(0, m), ct).ConfigureAwait(false);
                return true;
            }, cancellationToken).ConfigureAwait(false);
            if (fresh)
            {
                paced.Accepted(); // its words keep their credit (a duplicate's are taken back: UploadPace)

                // Kept for the record; duplicates were decided above (one accepted vector per site and attempt).
                _state.Store.TryRecordSubmission(session.Round, site, stage, sha);
                _state.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", session.Round).AddSite(site).Add("bytes", 4L * m).Add("sha256", sha));
                session.Signal();
            }

            return new Ack { Duplicate = !fresh };
        }
        finally
        {
            ArrayPool<uint>.Shared.Return(buffer, clearArray: true);
        }
    }

    /// <summary>
    /// Protocol version 4: one slice of the caller's masked input, for a slice this silo hosts (docs/cluster.md §6). The
    /// slice silos' service (SecureFed.Cluster) makes the same checks with the same <see cref="SliceUploadReader"/>.
    /// </summary>
    private async Task<Ack> UploadSliceAsync(RoundSession session, string site, MaskedInputChunk first, IAsyncStreamReader<MaskedInputChunk> requestStream, CancellationToken cancellationToken)
    {
        SliceUploadLayout? layout = session.Server.SliceUploads;
        int slice = (int)Math.Min(first.Slice, int.MaxValue);
        if (layout is null)
        {
            Refuse(session, site, StatusCode.FailedPrecondition, RefusalReasons.MalformedUpload, $"slice {first.Slice} refused: this round takes the masked input whole (protocol version 3); it announced no slices");
        }

        if (slice >= layout.Count)
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.MalformedUpload, $"slice {first.Slice} does not exist; the round has {layout.Count} slices");
        }

        // Before any word is read: this process takes only the slices it hosts.
        if (await session.Server.SliceElsewhereAsync(slice, cancellationToken).ConfigureAwait(false) is string elsewhere)
        {
            Refuse(session, site, StatusCode.FailedPrecondition, RefusalReasons.MalformedUpload, $"slice {slice} is not hosted by this silo; upload it to {elsewhere}");
        }

        int length = layout.Length(slice);
        SliceUploadRefusal? refusal = SliceUploadReader.CheckFirst(first, slice, length);
        if (refusal is not null)
        {
            Refuse(session, site, refusal.Code, refusal.Category, refusal.Reason);
        }

        using UploadLimiter.Lease lease = await AcquireSlotAsync(session, site, cancellationToken).ConfigureAwait(false);
        using PacedUpload paced = _pace.Watch(requestStream, session.SessionId, site, first.Words.Count); // credited only if fresh
        requestStream = paced.Reader;
        // The words go to the round server a gRPC chunk at a time as they arrive (the cluster's slice grain on this silo
        // checks, spills and adds each piece): the slice is never buffered whole here.
        string sha = first.Sha256.ToLowerInvariant();
        bool read = false;
        SliceUploadRefusal? refused = null;
        Task<SliceUploadRefusal?> ReadWords(Func<ReadOnlyMemory<uint>, int, Task> piece, CancellationToken ct)
        {
            read = true;
            return SliceUploadReader.StreamAsync(first, requestStream, length, slice, piece, ct);
        }

        bool fresh = await AcceptOnceAsync(session, site, "masked_input_slice_" + slice.ToString(System.Globalization.CultureInfo.InvariantCulture), sha,
            async ct =>
            {
                SliceUploadOutcome outcome = await session.Server.AcceptMaskedInputSliceAsync(session.IndexOf(site), slice, sha, ReadWords, ct).ConfigureAwait(false);
                refused = outcome.Refusal;
                return outcome.Fresh;
            }, cancellationToken).ConfigureAwait(false);
        if (!read && refused is null)
        {
            // A retry of a slice already taken (the same digest): its words are still read and checked, not kept.
            refused = await SliceUploadReader.VerifyAsync(first, requestStream, length, slice, cancellationToken).ConfigureAwait(false);
        }

        if (refused is not null)
        {
            Refuse(session, site, refused.Code, refused.Category, refused.Reason);
        }

        if (fresh)
        {
            paced.Accepted();

            // What this silo received itself; the site's masked_input_received (every slice's digest) follows when the stage closes.
            _state.Audit.Append(AuditEvents.MaskedInputSliceReceived, f => f.Add("round", session.Round).AddSite(site).Add("slice", slice).Add("bytes", 4L * length).Add("sha256", sha));
            session.Signal();
        }

        return new Ack { Duplicate = !fresh };
    }

    /// <summary>
    /// One of the <see cref="UploadLimiter"/>'s slots for <paramref name="site"/>'s upload: a site reads one upload at a time;
    /// as many more as the round has slices (one for a whole vector: a retry) may wait for it; beyond that the upload is
    /// refused with ResourceExhausted before anything waits.
    /// </summary>
    private async Task<UploadLimiter.Lease> AcquireSlotAsync(RoundSession session, string site, CancellationToken cancellationToken)
    {
        int waiting = Math.Max(1, session.Server.SliceUploads?.Count ?? 1);
        UploadLimiter.Lease? lease = await _uploads.AcquireAsync(site, waiting, cancellationToken).ConfigureAwait(false);
        if (lease is null)
        {
            Refuse(session, site, StatusCode.ResourceExhausted, RefusalReasons.TooManyUploads,
                $"site '{site}' already has {waiting + 1} masked-input uploads open at this aggregator (one is read at a time, at most {waiting} wait); refused");
        }

        return lease;
    }

    public override async Task<SurvivorSet> AwaitSurvivors(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.MaskedInput);
        RoundSession session = CurrentSession(request.Header, site);
        await WaitAsync(session, ProtocolStage.MaskedInputCollection, context).ConfigureAwait(false);
        var result = new SurvivorSet { Header = ReplyHeader(session, Stage.MaskedInput) };
        result.Survivors.AddRange(session.Survivors!.Select(i => (uint)i));
        return result;
    }

    public override async Task<Ack> SignSurvivors(ConsistencyRequest request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.Consistency);
        RoundSession session = CurrentSession(request.Header, site);
        var signature = new ConsistencySignature(session.IndexOf(site), request.Signature.ToByteArray());
        bool fresh = await GuardAsync(session, site, ct => session.Server.AcceptConsistencySignatureAsync(signature, ct), context.CancellationToken).ConfigureAwait(false);
        if (fresh)
        {
            if (request.HasScored)
            {
                // Federated evaluation: the site's own word on its flag, checked against the summed flag before publishing;
                // only with its accepted signature (a refused or duplicate request declares nothing).
                session.DeclareScored(site, request.Scored);
            }

            session.Signal();
        }

        return new Ack { Duplicate = !fresh };
    }

    public override async Task<UnmaskRequestMessage> AwaitUnmaskRequest(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.Consistency);
        RoundSession session = CurrentSession(request.Header, site);
        await WaitAsync(session, ProtocolStage.ConsistencyCheck, context).ConfigureAwait(false);
        UnmaskRequest unmask = session.UnmaskRequest!;
        var result = new UnmaskRequestMessage { Header = ReplyHeader(session, Stage.Consistency) };
        result.Survivors.AddRange(unmask.Survivors.Select(i => (uint)i));
        result.Dropped.AddRange(unmask.Dropped.Select(i => (uint)i));
        result.Signatures.AddRange(unmask.Signatures.Select(s => new ConsistencySignatureMessage { Sender = (uint)s.Sender, Signature = ByteString.CopyFrom(s.Signature) }));
        return result;
    }

    public override async Task<Ack> Unmask(UnmaskResponseMessage request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.Unmasking);
        RoundSession session = CurrentSession(request.Header, site);
        RefuseIfUnmaskIllShaped(session, site, request);
        var response = new UnmaskResponse(
            session.IndexOf(site),
            [.. request.SelfMaskShares.Select(s => new RevealedShare((int)s.Owner, s.Value.ToByteArray()))],
            [.. request.MaskingKeyShares.Select(s => new RevealedShare((int)s.Owner, s.Value.ToByteArray()))]);
        bool fresh = await AcceptOnceAsync(session, site, "unmask", UnmaskDigest(response), ct => session.Server.AcceptUnmaskResponseAsync(response, ct), context.CancellationToken).ConfigureAwait(false);
        if (fresh)
        {
            _state.Audit.Append(AuditEvents.UnmaskResponse, f => f
                .Add("round", session.Round)
                .AddSite(site)
                .Add("b_shares", response.SelfMaskShares.Count)
                .Add("s_shares", response.MaskingKeyShares.Count)
                .Add("b_share_owners", response.SelfMaskShares.Select(s => session.Parameters[s.Owner].Name))
                .Add("s_share_owners", response.MaskingKeyShares.Select(s => session.Parameters[s.Owner].Name)));
            session.Signal();
        }

        return new Ack { Duplicate = !fresh };
    }

    /// <summary>
    /// The outcome of the attempt the header names: of the current one when it ends (a long-poll), or, for an attempt that is
    /// no longer current, as the round store recorded it (<see cref="RoundCoordinator.RecordedOutcomeAsync"/>). An agent
    /// that sent its unmasking response waits here; when the aggregator restarts (or a cluster coordinator takes over, or a
    /// later attempt opens) before it hears the answer, its retry reaches a process whose current attempt is another one.
    /// It was refused as a stale or replayed message (and audited so against an honest site), and the agent reported a
    /// round that completed with its update as ended. Only an attempt recorded under the header's session is answered
    /// so, and only to a member of its cohort; anything else is refused as before.
    /// </summary>
    public override async Task<RoundOutcome> AwaitRoundOutcome(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.Unmasking);
        Header header = request.Header;
        if (!IsCurrent(header) && header.Round <= (ulong)long.MaxValue
            && await _coordinator.RecordedOutcomeAsync((long)header.Round, header.SessionId, context.CancellationToken).ConfigureAwait(false) is { } recorded)
        {
            if (!recorded.Cohort.Contains(site, StringComparer.Ordinal))
            {
                RefuseCall(site, header.Round, StatusCode.PermissionDenied, RefusalReasons.NotInCohort, $"site '{site}' is not in the cohort of round {header.Round}");
            }

            Log.RecordedOutcome(_logger, site, (long)header.Round, recorded.Outcome.Completed ? "completed" : "aborted");
            return recorded.Outcome;
        }

        RoundSession session = FindSession(header, site);
        return await session.OutcomeAsync(context.CancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether <paramref name="header"/> names the coordinator's current attempt (round and session).</summary>
    private bool IsCurrent(Header header) =>
        _coordinator.Current is { } current && (ulong)current.Round == header.Round && current.SessionId == header.SessionId;

    /// <summary>Values per <c>ModelChunk</c> of a download (64 KiB).</summary>
    public const int DownloadChunkValues = 16_384;

    public override async Task DownloadModel(ModelRequest request, IServerStreamWriter<ModelChunk> responseStream, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header, Stage.Model);
        long version = (long)request.Version;
        (long current, string currentSha) = _state.Model.Current;
        if (version == 0)
        {
            version = current;
        }

        // The gate comes before the round store's look-up: a version that does not exist takes a token too, so a site
        // cannot make the store look up missing versions without end (hostile-site review, session 56: NOT_FOUND came
        // first, with no token taken and nothing audited).
        if (_downloads.TryStart(site, version, current) is string tooOften)
        {
            RefuseCall(site, 0, StatusCode.ResourceExhausted, RefusalReasons.TooManyDownloads, tooOften); // round 0: a download names none
        }

        string sha = version == current ? currentSha : _state.Store.FindModel(version)?.Sha256 ?? throw NotStored(version, current);

        // Streamed from the round store a chunk at a time (a stored version never changes), hashed as it is sent: bytes
        // that do not match the version's SHA-256 end the call with an error after the last chunk (the agent checks too).
        // Agents accept any chunk size (PROTOCOL.md §5). One buffer and one message serve the whole download: each chunk is
        // read into the buffer, hashed, copied into the message's field (which keeps its array across Clear) and written;
        // gRPC serializes a message into the response before WriteAsync completes, so the message is refilled only after
        // that. A download used to allocate a copy of each chunk and a new message with its own field array (2 x 64 KiB per
        // chunk: 128 MiB per agent for 16 M parameters; 670 MiB for five agents), garbage that left the process's heap
        // ~10 MiB larger for the rest of the round (docs/benchmarks.md, runs 33-34); the chunks are small objects either
        // way (the product's large-object threshold is 4 MiB, SecureFed.Cli.csproj).
        Stream bytes;
        try
        {
            bytes = _state.Store.OpenModel(version);
        }
        catch (InvalidOperationException)
        {
            throw NotStored(version, current); // pruned between the look-up and the open (SecureFed:KeepModelVersions)
        }

        using Stream stream = bytes;
        long total = bytes.Length / sizeof(float);
        const int chunk = DownloadChunkValues;
        float[] values = new float[(int)Math.Min(chunk, total)];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var message = new ModelChunk { Version = (ulong)version, Sha256 = sha, TotalValues = (uint)total };
        for (long offset = 0; offset < total; offset += chunk)
        {
            Span<float> run = values.AsSpan(0, (int)Math.Min(chunk, total - offset));
            try
            {
                // Each read opens and closes the blob (ModelBlobStream): a download drained slowly holds no SQLite snapshot.
                ModelState.ReadValues(bytes, run);
            }
            catch (InvalidOperationException)
            {
                throw NotStored(version, _state.Model.Current.Version); // removed while it was sent (SecureFed:KeepModelVersions)
            }

            hash.AppendData(WireEncoding.ModelBytesView(run));
            if (offset > 0)
            {
                // The digest and the length go in the first chunk only (PROTOCOL.md §5).
                message.Sha256 = "";
                message.TotalValues = 0;
            }

            message.Offset = (uint)offset;
            message.Values.Clear();
            message.Values.AddRange(run.Length == values.Length ? values : run.ToArray()); // an array is copied in at once; only a short last chunk needs its own
            await responseStream.WriteAsync(message, context.CancellationToken).ConfigureAwait(false);
        }

        string actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!string.Equals(actual, sha, StringComparison.Ordinal))
        {
            throw new RpcException(new Status(StatusCode.DataLoss, $"model version {version} in the aggregator's round store is corrupt: its bytes hash to SHA-256 {actual}, not its recorded {sha}"));
        }
    }

    /// <summary>The answer to a download of a version the round store does not hold: never stored, or pruned.</summary>
    private RpcException NotStored(long version, long current) => new(new Status(
        StatusCode.NotFound,
        _options.KeepModelVersions > 0 && version < current
            ? $"model version {version} does not exist (latest is {current}; the aggregator keeps only the newest {_options.KeepModelVersions}, SecureFed:KeepModelVersions)"
            : $"model version {version} does not exist (latest is {current})"));

    /// <summary>
    /// Rounds (attempts) a <c>GetStatus</c> reply lists, the most recent: its size and the store work behind it stay
    /// bounded however long the federation runs (the whole history is in the audit log and <c>securefed audit</c>).
    /// </summary>
    public const int StatusRounds = 50;

    /// <summary>The federation's status, the same for every site, at most <see cref="FederationStatusCache.MaxAge"/> old.</summary>
    public override Task<FederationStatus> GetStatus(StatusRequest request, ServerCallContext context)
    {
        Authenticate(context, request.Header, Stage.Unspecified);
        return Task.FromResult(_statusCache.Get(BuildStatus));
    }

    /// <summary>The federation's status now: model version, ε spent, the last <see cref="StatusRounds"/> rounds (read from the round store).</summary>
    private FederationStatus BuildStatus()
    {
        var status = new FederationStatus
        {
            FederationId = _options.Federation,
            LatestModelVersion = (ulong)_state.Model.Version,
            SiteEpsilonSpent = _state.Budget.Spent(_options.Delta),
        };
        foreach (var r in _state.Store.ListRecentRounds(StatusRounds))
        {
            var summary = new RoundSummary
            {
                Round = (ulong)r.Round,
                State = r.Status.ToString().ToLowerInvariant(),
                Stage = r.Stages.Count > 0 ? r.Stages[^1].Stage : "",
                AbortReason = r.AbortReason ?? "",
            };
            summary.Participants.AddRange(r.Participants);
            status.Rounds.Add(summary);
        }

        return status;
    }

    private string Authenticate(ServerCallContext context, Header? header, Stage expected)
    {
        string site = Identify(context, header);
        if (header is null)
        {
            RefuseCall(site, 0, StatusCode.InvalidArgument, RefusalReasons.MissingHeader, $"{context.Method}: the request carries no header (federation, round, session, sender)");
        }

        CheckHeader(header, site, expected, context.Method);
        return site;
    }

    /// <summary>
    /// The caller's site from its mTLS certificate, or, for a call another silo of the aggregator cluster forwarded with the
    /// aggregator's own certificate, from the forwarding header (<see cref="ForwardedIdentity"/>); refused (and audited)
    /// when there is no certificate, it is not a provisioned, non-revoked site, or the forwarding header comes from
    /// anything but the aggregator's certificate.
    /// </summary>
    private string Identify(ServerCallContext context, Header? header)
    {
        ForwardedAudit.Begin(null);
        CallerIdentity caller = ForwardedIdentity.Decide(context.GetHttpContext().Connection.ClientCertificate,
            context.RequestHeaders.GetValue(ForwardedIdentity.SiteHeader), context.RequestHeaders.GetValue(ForwardedIdentity.SiloHeader), _state.Kit.Manifest);
        if (caller.Site is null)
        {
            RefuseCall(caller.Caller, header?.Round ?? 0, caller.Code, caller.Category!, caller.Reason!);
        }

        if (caller.ForwardedBy is not null)
        {
            Log.Forwarded(_logger, context.Method, caller.Site, caller.ForwardedBy);
        }

        ForwardedAudit.Begin(caller.ForwardedBy);
        return caller.Site;
    }

    /// <summary>
    /// Header checks in this order (PROTOCOL.md §3, "Refusals"): the length of federation, sender and session (at most
    /// <see cref="AuditText.IdentifierChars"/> characters each; the refusal states the length, not the text), federation,
    /// sender = certificate, stage of the method. Each refusal is audited like a stage-level one.
    /// </summary>
    private void CheckHeader(Header header, string site, Stage expected, string method)
    {
        RefuseIfTooLong(header.FederationId, "federation_id", header, site);
        RefuseIfTooLong(header.Sender, "sender", header, site);
        RefuseIfTooLong(header.SessionId, "session_id", header, site);
        if (header.FederationId != _options.Federation)
        {
            RefuseCall(site, header.Round, StatusCode.InvalidArgument, RefusalReasons.WrongFederation, $"the message is for federation '{AuditText.Bound(header.FederationId, AuditText.IdentifierChars)}'; this aggregator serves '{_options.Federation}'");
        }

        if (header.Sender != site)
        {
            RefuseCall(site, header.Round, StatusCode.PermissionDenied, RefusalReasons.WrongSender, $"the header names sender '{AuditText.Bound(header.Sender, AuditText.IdentifierChars)}' but the client certificate belongs to '{site}'");
        }

        if (header.Stage != expected)
        {
            RefuseCall(site, header.Round, StatusCode.InvalidArgument, RefusalReasons.WrongStage, $"{method}: the header's stage is {WireName(header.Stage)}; this call carries {WireName(expected)}");
        }
    }

    private void RefuseIfTooLong(string value, string field, Header header, string site)
    {
        if (value.Length > AuditText.IdentifierChars)
        {
            RefuseCall(site, header.Round, StatusCode.InvalidArgument, RefusalReasons.OversizedField,
                $"the header's {field} has {value.Length} characters; the limit is {AuditText.IdentifierChars}");
        }
    }

    private RoundSession CurrentSession(Header header, string site)
    {
        RoundSession session = FindSession(header, site);
        if (session.IsFinished)
        {
            RefuseCall(site, header.Round, StatusCode.FailedPrecondition, RefusalReasons.RoundEnded, $"round {session.Round} has already ended");
        }

        return session;
    }

    private RoundSession FindSession(Header header, string site)
    {
        RoundSession? session = _coordinator.Current;
        if (session is null || (ulong)session.Round != header.Round || session.SessionId != header.SessionId)
        {
            string current = session is null ? "no round is open" : $"the current round is {session.Round} (session {session.SessionId})";
            RefuseCall(site, header.Round, StatusCode.FailedPrecondition, RefusalReasons.StaleOrReplay,
                $"the message is for round {header.Round} session '{AuditText.Bound(header.SessionId, AuditText.IdentifierChars)}', but {current}; replays and stale messages are refused");
        }

        if (session.IndexOf(site) == 0)
        {
            RefuseCall(site, header.Round, StatusCode.PermissionDenied, RefusalReasons.NotInCohort, $"site '{site}' is not in the cohort of round {session.Round}");
        }

        return session;
    }

    /// <summary>
    /// A refusal before any round state is touched (certificate, header, round lookup): counted, logged and audited
    /// (within the caller's share of refusal lines, <see cref="RefusalAudit"/>), thrown.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void RefuseCall(string site, ulong round, StatusCode code, string category, string reason)
    {
        _telemetry.Refused(code, category);
        if (_refusals.Append(site, category, f => f.Add("round", (long)Math.Min(round, long.MaxValue)).AddSite(site).Add("status", code.ToString()).Add("reason", reason)))
        {
            Log.Refused(_logger, site, reason);
        }

        throw new RpcException(new Status(code, reason));
    }

    /// <summary>
    /// Idempotent acceptance of a submission identified by <paramref name="digest"/>: the first accepted copy is
    /// recorded; a later identical copy is a duplicate (also after the stage closed); a later different one is refused
    /// with <see cref="StatusCode.AlreadyExists"/>.
    /// </summary>
    private async Task<bool> AcceptOnceAsync(RoundSession session, string site, string kind, string digest, Func<CancellationToken, Task<bool>> accept, CancellationToken cancellationToken)
    {
        SemaphoreSlim gate = session.SubmissionGate(site);
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            string? recorded = session.RecordedDigest(site, kind);
            if (recorded is not null)
            {
                if (string.Equals(recorded, digest, StringComparison.Ordinal))
                {
                    return false;
                }

                Refuse(session, site, StatusCode.AlreadyExists, RefusalReasons.Equivocation,
                    $"site '{site}' already submitted a different {kind} message in round {session.Round} (recorded SHA-256 {recorded}, now {AuditText.Bound(digest, AuditText.IdentifierChars)}); equivocation refused");
            }

            bool fresh = await GuardAsync(session, site, accept, cancellationToken).ConfigureAwait(false);
            if (fresh)
            {
                session.RecordDigest(site, kind, digest);
            }

            return fresh;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Refuses, before any share is copied or hashed, an unmasking response no honest site sends
    /// (<see cref="UnmaskShapeProblem"/> with the attempt's cohort size).
    /// </summary>
    private void RefuseIfUnmaskIllShaped(RoundSession session, string site, UnmaskResponseMessage request)
    {
        if (UnmaskShapeProblem(request, session.Parameters.CohortSize, string.Create(CultureInfo.InvariantCulture, $"{session.Parameters.CohortSize} in round {session.Round}")) is string problem)
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.OversizedField, problem);
        }
    }

    /// <summary>
    /// What makes an unmasking response one no honest site sends, found by counting and by each value's length only (no
    /// copy, no hash): more shares in all than <paramref name="members"/> (a site reveals at most one share per cohort
    /// member: b-shares of survivors, s-shares of dropped sites, never both of one owner), or a share whose value is not
    /// <see cref="ProtocolLabels.ShareValueSize"/> bytes; the reason names the field. Null when neither: the round server
    /// then checks owners and values as before. <paramref name="membersText"/> states the bound in the reason.
    /// </summary>
    internal static string? UnmaskShapeProblem(UnmaskResponseMessage request, int members, string membersText)
    {
        ArgumentNullException.ThrowIfNull(request);
        int b = request.SelfMaskShares.Count;
        int s = request.MaskingKeyShares.Count;
        if ((long)b + s > members)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"Unmask: self_mask_shares ({b}) and masking_key_shares ({s}) hold {(long)b + s} shares; a site reveals at most one share per cohort member, {membersText}");
        }

        return ShareSizeProblem(request.SelfMaskShares, "self_mask_shares") ?? ShareSizeProblem(request.MaskingKeyShares, "masking_key_shares");
    }

    private static string? ShareSizeProblem(IReadOnlyList<RevealedShareMessage> shares, string field)
    {
        for (int i = 0; i < shares.Count; i++)
        {
            if (shares[i].Value.Length != ProtocolLabels.ShareValueSize)
            {
                return string.Create(CultureInfo.InvariantCulture,
                    $"Unmask: {field}[{i}].value has {shares[i].Value.Length} bytes; a share is {ProtocolLabels.ShareValueSize} bytes");
            }
        }

        return null;
    }

    /// <summary>
    /// SHA-256 (lowercase hex) of an unmasking response as a set: "b" then "s" shares, each sorted by owner then by value
    /// (bytes compared in order, a prefix first), each u32be(owner) ‖ u32be(length) ‖ value. Two responses with the same
    /// shares in another order have the same digest. (The value order is the one the former sort by hex strings gave, so
    /// digests recorded before are unchanged.)
    /// </summary>
    internal static string UnmaskDigest(UnmaskResponse response)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> head = stackalloc byte[8];
        foreach ((byte tag, IReadOnlyList<RevealedShare> shares) in new[] { ((byte)'b', response.SelfMaskShares), ((byte)'s', response.MaskingKeyShares) })
        {
            hash.AppendData([tag]);
            RevealedShare[] sorted = [.. shares];
            Array.Sort(sorted, static (x, y) => x.Owner != y.Owner ? x.Owner.CompareTo(y.Owner) : x.Value.AsSpan().SequenceCompareTo(y.Value));
            foreach (RevealedShare share in sorted)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(head, (uint)share.Owner);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(head[4..], (uint)share.Value.Length);
                hash.AppendData(head);
                hash.AppendData(share.Value);
            }
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// Judges <paramref name="site"/>'s accusation only if it is the site's first of this attempt (PROTOCOL.md "Blame"). An
    /// identical one (same accused, same signature: an agent's retry) waits for the first's outcome and returns false when
    /// it was judged (answered as a duplicate), or is judged itself when the first was freed; any other one is refused with
    /// AlreadyExists before any crypto, store or audit work (its refusal line is within the caller's share,
    /// <see cref="RefusalAudit"/>). An accusation refused as unverifiable, or whose judging failed, does not count: the
    /// site may send another.
    /// </summary>
    /// <returns>True when the accusation was judged now.</returns>
    private async Task<bool> JudgeAccusationOnceAsync(RoundSession session, string site, ShareAccusationMessage message, CancellationToken cancellationToken)
    {
        var claim = new AccusationClaim(message.Accused, message.Signature.ToByteArray());
        while (session.TryBeginAccusation(site, claim) is { } held)
        {
            if (!held.Matches(message.Accused, message.Signature.Span))
            {
                string first = held.Outcome is { IsCompletedSuccessfully: true, Result: true } ? $"'{session.Parameters[(int)held.Accused].Name}'" : "another site, an accusation still being judged";
                Refuse(session, site, StatusCode.AlreadyExists, RefusalReasons.BadAccusation,
                    $"site '{site}' already accused {first} in this attempt of round {session.Round}; one accusation per site per attempt is judged");
            }

            if (await held.Outcome.WaitAsync(cancellationToken).ConfigureAwait(false))
            {
                return false;
            }
        }

        bool judged = false;
        try
        {
            await JudgeAccusationAsync(session, site, message, cancellationToken).ConfigureAwait(false);
            judged = true;
        }
        finally
        {
            session.EndAccusation(site, claim, judged);
        }

        return true;
    }

    /// <summary>
    /// Checks a share accusation (PROTOCOL.md "Blame") against the envelope this aggregator relayed. A malformed or
    /// unverifiable accusation is refused with InvalidArgument and changes nothing. Otherwise the party at fault is
    /// audited and left out of the next round attempts; when the accused is at fault the attempt is aborted at once.
    /// </summary>
    private async Task JudgeAccusationAsync(RoundSession session, string site, ShareAccusationMessage message, CancellationToken cancellationToken)
    {
        RoundServerStatus status = await session.Server.StatusAsync(cancellationToken).ConfigureAwait(false);
        ProtocolStage stage = status.Stage;
        if (stage is < ProtocolStage.MaskedInputCollection or > ProtocolStage.Unmasking)
        {
            Refuse(session, site, StatusCode.FailedPrecondition, RefusalReasons.BadAccusation, $"an accusation is possible once the shares were relayed; the round is at stage {stage}");
        }

        int accuser = session.IndexOf(site);
        int accused = (int)Math.Min(message.Accused, int.MaxValue);
        if (accused < 1 || accused > session.Parameters.CohortSize || accused == accuser)
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.BadAccusation, $"the accusation names index {message.Accused}, which is not another member of the cohort");
        }

        EncryptedShare? envelope = (await session.Server.SharesForAsync(accuser, cancellationToken).ConfigureAwait(false)).FirstOrDefault(s => s.Sender == accused);
        IReadOnlyList<KeyAdvertisement> ads = await session.Server.AdvertisementsForAsync(accuser, cancellationToken).ConfigureAwait(false);
        KeyAdvertisement? accuserAd = ads.FirstOrDefault(a => a.Sender == accuser);
        KeyAdvertisement? accusedAd = ads.FirstOrDefault(a => a.Sender == accused);
        string accusedName = session.Parameters[accused].Name;
        if (envelope is null || accuserAd is null || accusedAd is null)
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.BadAccusation, $"no share envelope from '{accusedName}' to '{site}' was relayed in this round");
        }

        var accusation = new ShareAccusation(accuser, accused, message.EncryptionPrivateKey.ToByteArray(), message.Signature.ToByteArray());
        if (accusation.EncryptionPrivateKey.Length == 0)
        {
            // A complaint takes the place of the site's masked input: only while inputs are collected, and only from a
            // site that sent none (an honest complainer leaves the attempt instead of uploading).
            if (stage != ProtocolStage.MaskedInputCollection || status.Delivered.Contains(accuser))
            {
                Refuse(session, site, StatusCode.FailedPrecondition, RefusalReasons.BadAccusation, stage != ProtocolStage.MaskedInputCollection
                    ? $"a complaint is possible only while masked inputs are collected, instead of the site's own; the round is at stage {stage}"
                    : $"site '{site}' already sent its masked input in this attempt; a complaint comes instead of it");
            }

            // A complaint never aborts the attempt: the complainer leaves it (its DeclineRound counts as declined) and the
            // attempt goes on, aborting at once when fewer than t inputs can still come (RoundCoordinator). An agent
            // charges its record-level ledger when its masked input is ready and learns of an abort only when its upload is
            // refused, so an abort here, at any time, let one hostile site spend every honest charge of the attempt (first
            // by complaining after the honest uploads, then, once that no longer aborted, by complaining before them: hostile-
            // site review and review of its fix, session 47). The complaint is a failure of the search by elimination of
            // unopened envelopes either way, stepped when the attempt ends (RoundCoordinator). No await after it is recorded,
            // so a call that ends early leaves either nothing or the whole verdict.
            JudgeComplaint(session, site, accusedName, accusation, envelope);
            Log.Complained(_logger, session.Round, site, accusedName);
            return;
        }

        AccusationVerdict verdict;
        try
        {
            verdict = ShareAccusation.Verify(session.Parameters, accusation, accuserAd, accusedAd, envelope);
        }
        catch (ProtocolViolationException ex)
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.BadAccusation, "unverifiable accusation: " + ex.Reason);
            throw; // not reached
        }
        finally
        {
            CryptographicOperations.ZeroMemory(accusation.EncryptionPrivateKey);
        }

        string atFault = verdict.AccusedAtFault ? accusedName : site;
        int excluded;
        try
        {
            // Excluded before the coordinator wakes to abort, so the retry's cohort cannot include it.
            excluded = _coordinator.Exclude(atFault, session.Round);
        }
        finally
        {
            if (verdict.AccusedAtFault)
            {
                // Even if recording the exclusion failed: the attempt ends before unmasking.
                session.RequestAbort($"site '{accusedName}' sent '{site}' an invalid share envelope (verified accusation: {verdict.Reason}); the round is retried without it");
            }
        }

        Log.Blamed(_logger, session.Round, site, accusedName, atFault, verdict.Reason, excluded);
        _state.Audit.Append(AuditEvents.Blame, f => f
            .Add("round", session.Round)
            .Add("accuser", site)
            .Add("accused", accusedName)
            .Add("at_fault", atFault)
            .Add("reason", verdict.Reason)
            .AddDigest("envelope_sha256", SHA256.HashData(envelope.Ciphertext))
            .Add("signature", Convert.ToHexStringLower(accusation.Signature))
            .Add("excluded_rounds", excluded));
    }

    /// <summary>
    /// A complaint (an accusation without a key, what agents send; PROTOCOL.md "Blame"): checked against the envelope this
    /// aggregator relayed and audited; the two sites become the sites involved in this attempt's failure of the search by
    /// elimination of unopened envelopes (the complaint cannot show which of them is at fault). The attempt goes on; the
    /// complainer leaves it (DeclineRound).
    /// </summary>
    private void JudgeComplaint(RoundSession session, string site, string accusedName, ShareAccusation complaint, EncryptedShare envelope)
    {
        try
        {
            ShareAccusation.VerifyComplaint(session.Parameters, complaint, envelope);
        }
        catch (ProtocolViolationException ex)
        {
            Refuse(session, site, StatusCode.InvalidArgument, RefusalReasons.BadAccusation, "unverifiable accusation: " + ex.Reason);
            throw; // not reached
        }

        session.AddEnvelopeComplaint(site, accusedName);
        _state.Audit.Append(AuditEvents.ShareComplaint, f => f
            .Add("round", session.Round)
            .Add("accuser", site)
            .Add("accused", accusedName)
            .AddDigest("envelope_sha256", SHA256.HashData(envelope.Ciphertext))
            .Add("signature", Convert.ToHexStringLower(complaint.Signature)));
    }

    private async Task<bool> GuardAsync(RoundSession session, string site, Func<CancellationToken, Task<bool>> action, CancellationToken cancellationToken)
    {
        try
        {
            return await action(cancellationToken).ConfigureAwait(false);
        }
        catch (RoundAbortedException ex)
        {
            // Only a cluster round ends this way under a message (e.g. its silo failed): the coordinator aborts the
            // attempt with the reason at its next check; the site hears that the round ended.
            session.RequestAbort(ex.Reason);
            throw new RpcException(new Status(StatusCode.Aborted, $"round {session.Round} ended: {ex.Reason}"));
        }
        catch (ProtocolViolationException ex)
        {
            StatusCode code = ex.Reason.Contains("out of order", StringComparison.Ordinal) ? StatusCode.FailedPrecondition
                : ex.Reason.StartsWith("already ", StringComparison.Ordinal) ? StatusCode.AlreadyExists
                : StatusCode.InvalidArgument;
            Refuse(session, site, code, RefusalReasons.ProtocolViolation, ex.Message);
            throw;
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Refuse(RoundSession session, string site, StatusCode code, string category, string reason)
    {
        _telemetry.Refused(code, category);
        if (_refusals.Append(site, category, f => f.Add("round", session.Round).AddSite(site).Add("reason", reason)))
        {
            Log.Refused(_logger, site, reason);
        }

        throw new RpcException(new Status(code, reason));
    }

    private async Task WaitAsync(RoundSession session, ProtocolStage stage, ServerCallContext context)
    {
        try
        {
            await session.WaitStageClosedAsync(stage, context.CancellationToken).ConfigureAwait(false);
        }
        catch (RoundAbortedException ex)
        {
            throw new RpcException(new Status(StatusCode.Aborted, $"round {session.Round} ended: {ex.Reason}"));
        }
    }

    private Header ReplyHeader(RoundSession session, Stage stage) => new()
    {
        FederationId = _options.Federation,
        Round = (ulong)session.Round,
        SessionId = session.SessionId,
        Stage = stage,
        Sender = "aggregator",
    };

    /// <summary>The enum value's name in the .proto file (STAGE_...).</summary>
    internal static string WireName(Stage stage) => stage switch
    {
        Stage.Unspecified => "STAGE_UNSPECIFIED",
        Stage.Announce => "STAGE_ANNOUNCE",
        Stage.AdvertiseKeys => "STAGE_ADVERTISE_KEYS",
        Stage.ShareKeys => "STAGE_SHARE_KEYS",
        Stage.MaskedInput => "STAGE_MASKED_INPUT",
        Stage.Consistency => "STAGE_CONSISTENCY",
        Stage.Unmasking => "STAGE_UNMASKING",
        Stage.Model => "STAGE_MODEL",
        _ => ((int)stage).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
