using System.Buffers;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
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

    public AggregationService(RoundCoordinator coordinator, AggregatorState state, IOptions<AggregatorOptions> options, UploadLimiter uploads, ILogger<AggregationService> logger)
    {
        _coordinator = coordinator;
        _state = state;
        _options = options.Value;
        _uploads = uploads;
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
        string site = Authenticate(context, request.Header);
        RoundSession? session = await _coordinator.AwaitRoundAsync(site, (long)request.Header.Round, context.CancellationToken).ConfigureAwait(false);
        if (session is null)
        {
            return new RoundAnnouncement { Finished = true, Header = new Header { FederationId = _options.Federation, Sender = "aggregator", Stage = Stage.Announce } };
        }

        return session.Announcement;
    }

    public override Task<Ack> DeclineRound(DeclineRoundRequest request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = CurrentSession(request.Header, site);
        string reason = Truncate(request.Reason, 500);
        session.Decline(site);
        Log.Declined(_logger, site, session.Round, reason);
        _state.Audit.Append(AuditEvents.Refusal, f => f.Add("round", session.Round).Add("site", site).Add("reason", "site declined: " + reason));
        return Task.FromResult(new Ack());
    }

    public override Task<Ack> AdvertiseKeys(AdvertiseKeysRequest request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = CurrentSession(request.Header, site);
        int index = session.IndexOf(site);
        var ad = new KeyAdvertisement(index, request.EncryptionPublicKey.ToByteArray(), request.MaskingPublicKey.ToByteArray(), request.Signature.ToByteArray(), request.SelfMaskCommitment.ToByteArray());
        bool fresh = Guard(session, site, () => session.Server.AcceptAdvertisement(ad));
        if (fresh)
        {
            _state.Audit.Append(AuditEvents.KeysReceived, f => f.Add("round", session.Round).Add("site", site).AddDigest("sha256", SHA256.HashData(request.ToByteArray())));
        }

        session.Signal();
        return Task.FromResult(new Ack { Duplicate = !fresh });
    }

    public override async Task<AdvertisementSet> AwaitAdvertisements(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = CurrentSession(request.Header, site);
        await WaitAsync(session, ProtocolStage.AdvertiseKeys, context).ConfigureAwait(false);
        var result = new AdvertisementSet { Header = ReplyHeader(session, Stage.AdvertiseKeys) };
        foreach (KeyAdvertisement ad in session.Server.AdvertisementsFor(session.IndexOf(site)))
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

    public override Task<Ack> ShareKeys(ShareKeysRequest request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = CurrentSession(request.Header, site);
        int index = session.IndexOf(site);
        var shares = request.Shares.Select(s => new EncryptedShare((int)s.Sender, (int)s.Recipient, s.Ciphertext.ToByteArray())).ToArray();
        bool fresh = Guard(session, site, () => session.Server.AcceptShares(index, shares));
        session.Signal();
        return Task.FromResult(new Ack { Duplicate = !fresh });
    }

    public override async Task<ShareSet> AwaitShares(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = CurrentSession(request.Header, site);
        await WaitAsync(session, ProtocolStage.ShareKeys, context).ConfigureAwait(false);
        var result = new ShareSet { Header = ReplyHeader(session, Stage.ShareKeys) };
        foreach (EncryptedShare s in session.Server.SharesFor(session.IndexOf(site)))
        {
            result.Shares.Add(new EncryptedShareMessage { Sender = (uint)s.Sender, Recipient = (uint)s.Recipient, Ciphertext = ByteString.CopyFrom(s.Ciphertext) });
        }

        return result;
    }

    public override async Task<Ack> UploadMaskedInput(IAsyncStreamReader<MaskedInputChunk> requestStream, ServerCallContext context)
    {
        string site = Authenticate(context, null, headerRequired: false);
        if (!await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "the masked-input stream is empty"));
        }

        MaskedInputChunk first = requestStream.Current;
        if (first.Header is null)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "the first masked-input chunk must carry the header"));
        }

        CheckSender(first.Header, site);
        RoundSession session = CurrentSession(first.Header, site);
        int m = session.Parameters.VectorLength;
        if (first.TotalWords != (uint)m)
        {
            Refuse(session, site, StatusCode.InvalidArgument, $"the masked input announces {first.TotalWords} words; the round's vector length is {m}");
        }

        if (first.Sha256.Length != 64)
        {
            Refuse(session, site, StatusCode.InvalidArgument, "the first chunk must carry the SHA-256 of the vector (64 hex digits)");
        }

        // Bounded memory: at most MaxConcurrentUploads vectors are buffered at once; the rest wait their turn.
        using UploadLimiter.Lease lease = await _uploads.AcquireAsync(context.CancellationToken).ConfigureAwait(false);
        uint[] buffer = ArrayPool<uint>.Shared.Rent(m);
        try
        {
            int received = 0;
            MaskedInputChunk chunk = first;
            while (true)
            {
                if (chunk.Words.Count > MaxChunkWords)
                {
                    Refuse(session, site, StatusCode.ResourceExhausted, $"a chunk of {chunk.Words.Count} words exceeds the limit of {MaxChunkWords}");
                }

                if (chunk.Offset != (uint)received)
                {
                    Refuse(session, site, StatusCode.InvalidArgument, $"chunk at offset {chunk.Offset} arrived when {received} words had been received");
                }

                if (received + chunk.Words.Count > m)
                {
                    Refuse(session, site, StatusCode.InvalidArgument, $"the masked input is longer than the round's vector length {m}");
                }

                chunk.Words.CopyTo(buffer, received);
                received += chunk.Words.Count;
                if (!await requestStream.MoveNext(context.CancellationToken).ConfigureAwait(false))
                {
                    break;
                }

                chunk = requestStream.Current;
            }

            if (received != m)
            {
                Refuse(session, site, StatusCode.InvalidArgument, $"the masked input has {received} words; the round's vector length is {m}");
            }

            byte[] digest = WireEncoding.VectorDigest(buffer.AsSpan(0, m));
            if (!string.Equals(Convert.ToHexStringLower(digest), first.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                Refuse(session, site, StatusCode.DataLoss, "the masked input does not match the SHA-256 announced in its first chunk");
            }

            string sha = Convert.ToHexStringLower(digest);
            string stage = "masked_input/" + session.SessionId;
            bool fresh = true;
            try
            {
                // The state machine checks stage, membership, length and reduction first; only an accepted vector is
                // recorded, so a refused early upload cannot make a later honest one look like a duplicate.
                session.Server.AcceptMaskedInput(session.IndexOf(site), buffer.AsSpan(0, m));
            }
            catch (ProtocolViolationException ex) when (ex.Reason.Contains("already sent", StringComparison.Ordinal))
            {
                // A retry after a lost reply: identical → acknowledged as a duplicate; different → refused.
                try
                {
                    fresh = _state.Store.TryRecordSubmission(session.Round, site, stage, sha);
                }
                catch (InvalidOperationException conflict)
                {
                    Refuse(session, site, StatusCode.AlreadyExists, conflict.Message);
                }

                if (fresh)
                {
                    Refuse(session, site, StatusCode.AlreadyExists, ex.Message);
                }
            }
            catch (ProtocolViolationException ex)
            {
                StatusCode code = ex.Reason.Contains("out of order", StringComparison.Ordinal) ? StatusCode.FailedPrecondition : StatusCode.InvalidArgument;
                Refuse(session, site, code, ex.Message);
            }

            if (fresh)
            {
                _state.Store.TryRecordSubmission(session.Round, site, stage, sha);
                _state.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", session.Round).Add("site", site).Add("bytes", 4L * m).Add("sha256", sha));
            }

            session.Signal();
            return new Ack { Duplicate = !fresh };
        }
        finally
        {
            ArrayPool<uint>.Shared.Return(buffer, clearArray: true);
        }
    }

    public override async Task<SurvivorSet> AwaitSurvivors(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = CurrentSession(request.Header, site);
        await WaitAsync(session, ProtocolStage.MaskedInputCollection, context).ConfigureAwait(false);
        var result = new SurvivorSet { Header = ReplyHeader(session, Stage.MaskedInput) };
        result.Survivors.AddRange(session.Survivors!.Select(i => (uint)i));
        return result;
    }

    public override Task<Ack> SignSurvivors(ConsistencyRequest request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = CurrentSession(request.Header, site);
        var signature = new ConsistencySignature(session.IndexOf(site), request.Signature.ToByteArray());
        bool fresh = Guard(session, site, () => session.Server.AcceptConsistencySignature(signature));
        session.Signal();
        return Task.FromResult(new Ack { Duplicate = !fresh });
    }

    public override async Task<UnmaskRequestMessage> AwaitUnmaskRequest(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = CurrentSession(request.Header, site);
        await WaitAsync(session, ProtocolStage.ConsistencyCheck, context).ConfigureAwait(false);
        UnmaskRequest unmask = session.UnmaskRequest!;
        var result = new UnmaskRequestMessage { Header = ReplyHeader(session, Stage.Consistency) };
        result.Survivors.AddRange(unmask.Survivors.Select(i => (uint)i));
        result.Dropped.AddRange(unmask.Dropped.Select(i => (uint)i));
        result.Signatures.AddRange(unmask.Signatures.Select(s => new ConsistencySignatureMessage { Sender = (uint)s.Sender, Signature = ByteString.CopyFrom(s.Signature) }));
        return result;
    }

    public override Task<Ack> Unmask(UnmaskResponseMessage request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = CurrentSession(request.Header, site);
        var response = new UnmaskResponse(
            session.IndexOf(site),
            [.. request.SelfMaskShares.Select(s => new RevealedShare((int)s.Owner, s.Value.ToByteArray()))],
            [.. request.MaskingKeyShares.Select(s => new RevealedShare((int)s.Owner, s.Value.ToByteArray()))]);
        bool fresh = Guard(session, site, () => session.Server.AcceptUnmaskResponse(response));
        if (fresh)
        {
            _state.Audit.Append(AuditEvents.UnmaskResponse, f => f
                .Add("round", session.Round)
                .Add("site", site)
                .Add("b_shares", response.SelfMaskShares.Count)
                .Add("s_shares", response.MaskingKeyShares.Count)
                .Add("b_share_owners", response.SelfMaskShares.Select(s => session.Parameters[s.Owner].Name))
                .Add("s_share_owners", response.MaskingKeyShares.Select(s => session.Parameters[s.Owner].Name)));
        }

        session.Signal();
        return Task.FromResult(new Ack { Duplicate = !fresh });
    }

    public override async Task<RoundOutcome> AwaitRoundOutcome(StageQuery request, ServerCallContext context)
    {
        string site = Authenticate(context, request.Header);
        RoundSession session = FindSession(request.Header, site);
        return await session.OutcomeAsync(context.CancellationToken).ConfigureAwait(false);
    }

    public override async Task DownloadModel(ModelRequest request, IServerStreamWriter<ModelChunk> responseStream, ServerCallContext context)
    {
        Authenticate(context, request.Header);
        long version = (long)request.Version;
        float[] values;
        string sha;
        if (version == 0 || version == _state.Model.Version)
        {
            (version, values, sha) = (_state.Model.Version, _state.Model.Values, _state.Model.Sha256);
        }
        else
        {
            byte[] bytes = _state.Store.LoadModel(version)
                ?? throw new RpcException(new Status(StatusCode.NotFound, $"model version {version} does not exist (latest is {_state.Model.Version})"));
            values = ModelState.FromBytes(bytes, $"model version {version}");
            sha = ModelState.Digest(values);
        }

        const int chunk = 65_536;
        for (int offset = 0; offset < values.Length; offset += chunk)
        {
            var message = new ModelChunk { Version = (ulong)version, Offset = (uint)offset };
            if (offset == 0)
            {
                message.Sha256 = sha;
                message.TotalValues = (uint)values.Length;
            }

            message.Values.AddRange(values.AsSpan(offset, Math.Min(chunk, values.Length - offset)).ToArray());
            await responseStream.WriteAsync(message, context.CancellationToken).ConfigureAwait(false);
        }
    }

    public override Task<FederationStatus> GetStatus(StatusRequest request, ServerCallContext context)
    {
        Authenticate(context, request.Header);
        var status = new FederationStatus
        {
            FederationId = _options.Federation,
            LatestModelVersion = (ulong)_state.Model.Version,
            SiteEpsilonSpent = _state.Budget.Spent(_options.Delta),
        };
        foreach (var r in _state.Store.ListRounds())
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

        return Task.FromResult(status);
    }

    private string Authenticate(ServerCallContext context, Header? header, bool headerRequired = true)
    {
        var certificate = context.GetHttpContext().Connection.ClientCertificate;
        if (certificate is null)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "a client certificate issued by the federation CA is required"));
        }

        string? site = PeerTrust.IdentifySite(certificate, _state.Kit.Manifest, out string? error);
        if (site is null)
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, error ?? "the client certificate does not identify a provisioned site"));
        }

        if (header is not null)
        {
            CheckSender(header, site);
        }
        else if (headerRequired)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"{context.Method}: the request carries no header (federation, round, session, sender)"));
        }

        return site;
    }

    private void CheckSender(Header header, string site)
    {
        if (header.FederationId != _options.Federation)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"the message is for federation '{header.FederationId}'; this aggregator serves '{_options.Federation}'"));
        }

        if (header.Sender != site)
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"the header names sender '{header.Sender}' but the client certificate belongs to '{site}'"));
        }
    }

    private RoundSession CurrentSession(Header header, string site)
    {
        RoundSession session = FindSession(header, site);
        if (session.IsFinished)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"round {session.Round} has already ended"));
        }

        return session;
    }

    private RoundSession FindSession(Header header, string site)
    {
        RoundSession? session = _coordinator.Current;
        if (session is null || (ulong)session.Round != header.Round || session.SessionId != header.SessionId)
        {
            string current = session is null ? "no round is open" : $"the current round is {session.Round} (session {session.SessionId})";
            Log.Refused(_logger, site, $"stale or unknown round {header.Round}/{header.SessionId}");
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"the message is for round {header.Round} session '{header.SessionId}', but {current}; replays and stale messages are refused"));
        }

        if (session.IndexOf(site) == 0)
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"site '{site}' is not in the cohort of round {session.Round}"));
        }

        return session;
    }

    private bool Guard(RoundSession session, string site, Func<bool> action)
    {
        try
        {
            return action();
        }
        catch (ProtocolViolationException ex)
        {
            StatusCode code = ex.Reason.Contains("out of order", StringComparison.Ordinal) ? StatusCode.FailedPrecondition : StatusCode.InvalidArgument;
            Refuse(session, site, code, ex.Message);
            throw;
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Refuse(RoundSession session, string site, StatusCode code, string reason)
    {
        Log.Refused(_logger, site, reason);
        _state.Audit.Append(AuditEvents.Refusal, f => f.Add("round", session.Round).Add("site", site).Add("reason", reason));
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

    private static string Truncate(string value, int max) => value.Length <= max ? value : value[..max];
}
