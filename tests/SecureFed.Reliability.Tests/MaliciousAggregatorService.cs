using Google.Protobuf;
using Grpc.Core;
using SecureFed.Federation;
using SecureFed.Privacy;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A fake aggregator speaking the real wire protocol to one real agent (index 1). It simulates the other cohort members
/// itself (it holds their kits: honest <see cref="ClientRound"/>s for their advertisements, shares and signatures), runs
/// round 1 honestly and misbehaves in round 2 as <see cref="Misbehaviour"/> says. Every call it receives is recorded,
/// so a test can check what the agent revealed.
/// </summary>
internal sealed class MaliciousAggregatorService : Aggregation.AggregationBase, IDisposable
{
    public const int Rounds = 2;

    private readonly object _gate = new();
    private readonly string _federation;
    private readonly IReadOnlyList<string> _sites;
    private readonly IReadOnlyDictionary<string, PartyKit> _peerKits;
    private readonly FederationManifest _manifest;
    private readonly int _parameters;
    private readonly List<float[]> _models;
    private readonly List<(long Round, string Call)> _received = [];
    private RoundState? _current;

    /// <param name="sites">The cohort; <c>sites[0]</c> is the real agent, the others are simulated with their kits.</param>
    public MaliciousAggregatorService(FederationManifest manifest, IReadOnlyList<string> sites, IReadOnlyDictionary<string, PartyKit> peerKits, int parameters, AggregatorMisbehaviour misbehaviour)
    {
        _manifest = manifest;
        _federation = manifest.FederationName;
        _sites = sites;
        _peerKits = peerKits;
        _parameters = parameters;
        Misbehaviour = misbehaviour;
        _models =
        [
            [.. Enumerable.Range(0, parameters).Select(i => (float)Math.Sin(i) * 0.1f)],
            [.. Enumerable.Range(0, parameters).Select(i => (float)Math.Cos(i) * 0.1f)],
            [.. Enumerable.Range(0, parameters).Select(i => (float)Math.Sin(2 * i) * 0.1f)], // after round 2, when it completes
        ];
    }

    public AggregatorMisbehaviour Misbehaviour { get; }

    /// <summary>Model version v as the honest aggregator would serve it (versions above 2 only with <see cref="RoundCount"/> above 2).</summary>
    public float[] Model(long version) => version < _models.Count
        ? _models[(int)version]
        : [.. Enumerable.Range(0, _parameters).Select(i => (float)Math.Sin(version * i) * 0.1f)];

    /// <summary>Rounds before the federation finishes (misbehaviour is still in round <see cref="Rounds"/> only).</summary>
    public int RoundCount { get; init; } = Rounds;

    /// <summary>Called when the agent asks for round 2, i.e. after it has finished round 1.</summary>
    public Action? BeforeRound2 { get; init; }

    /// <summary>Review hook: changes round r's announcement after it is built (the simulated peers keep the real parameters).</summary>
    public Action<long, RoundAnnouncement>? Tamper { get; init; }

    /// <summary>Review hook: replaces the model round r announces and streams (its digest follows).</summary>
    public Func<long, float[], float[]>? TamperModel { get; init; }

    /// <summary>Review hook: ReportProgress of round r answers UNAVAILABLE while this returns true (null: UNIMPLEMENTED, as before).</summary>
    public Func<long, bool>? ProgressUnavailable { get; init; }

    /// <summary>Review hook: AwaitRound answers ABORTED while this returns true.</summary>
    public Func<bool>? AwaitRoundAborted { get; init; }

    /// <summary>Review hook: AwaitRound answers the status this returns (null: answers as usual).</summary>
    public Func<Status?>? AwaitRoundStatus { get; init; }

    /// <summary>Review hook: round r's outcome is an abort with the reason this returns (null: completed, as before).</summary>
    public Func<long, string?>? AbortReason { get; init; }

    /// <summary>Review hook: AwaitRound answers that the federation finished once this returns true.</summary>
    public Func<bool>? FinishedWhen { get; init; }

    /// <summary>Calls received: (round, method).</summary>
    public IReadOnlyList<(long Round, string Call)> Received
    {
        get
        {
            lock (_gate)
            {
                return [.. _received];
            }
        }
    }

    /// <summary>The survivor set the agent signed in round 2, as the fake sent it.</summary>
    public int[] SignedSurvivors => [.. Enumerable.Range(1, _sites.Count)];

    private AggregatorMisbehaviour Now(long round) => round == Rounds ? Misbehaviour : AggregatorMisbehaviour.None;

    public override Task<RoundAnnouncement> AwaitRound(AwaitRoundRequest request, ServerCallContext context)
    {
        long round = (long)request.Header.Round + 1;
        Record(round, nameof(AwaitRound));
        if (AwaitRoundAborted?.Invoke() == true)
        {
            throw new RpcException(new Status(StatusCode.Aborted, "replaced by a newer long-poll"));
        }

        if (AwaitRoundStatus?.Invoke() is Status status)
        {
            throw new RpcException(status);
        }

        if (round > RoundCount || FinishedWhen?.Invoke() == true)
        {
            return Task.FromResult(new RoundAnnouncement { Finished = true, Header = new Header { FederationId = _federation, Sender = "aggregator", Stage = Stage.Announce } });
        }

        if (round == Rounds)
        {
            BeforeRound2?.Invoke();
        }

        lock (_gate)
        {
            _current?.Dispose();
            _current = new RoundState(this, round);
            return Task.FromResult(_current.Announcement);
        }
    }

    public override Task<Ack> ReportProgress(ProgressReport request, ServerCallContext context)
    {
        if (ProgressUnavailable is null)
        {
            throw new RpcException(new Status(StatusCode.Unimplemented, "no progress reports"));
        }

        Record(request.Header.Round, nameof(ReportProgress));
        return ProgressUnavailable((long)request.Header.Round)
            ? throw new RpcException(new Status(StatusCode.Unavailable, "the aggregator is restarting"))
            : Task.FromResult(new Ack());
    }

    public override Task<Ack> DeclineRound(DeclineRoundRequest request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(DeclineRound));
        return Task.FromResult(new Ack());
    }

    public override async Task DownloadModel(ModelRequest request, IServerStreamWriter<ModelChunk> responseStream, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(DownloadModel));
        RoundState s = Current;
        float[] values = s.StreamedModel;
        const int chunk = 500;
        for (int offset = 0; offset < values.Length; offset += chunk)
        {
            var message = new ModelChunk { Version = request.Version, Offset = (uint)offset };
            if (offset == 0)
            {
                message.Sha256 = s.Announcement.ModelSha256;
                message.TotalValues = (uint)values.Length;
            }

            message.Values.AddRange(values.AsSpan(offset, Math.Min(chunk, values.Length - offset)).ToArray());
            await responseStream.WriteAsync(message, context.CancellationToken);
        }
    }

    public override Task<Ack> AdvertiseKeys(AdvertiseKeysRequest request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(AdvertiseKeys));
        RoundState s = Current;
        if (Now(s.Round) == AggregatorMisbehaviour.ServerError)
        {
            throw new InvalidOperationException("simulated bug in the aggregator");
        }

        lock (_gate)
        {
            s.Advertisements[1] = new KeyAdvertisement(1, request.EncryptionPublicKey.ToByteArray(), request.MaskingPublicKey.ToByteArray(), request.Signature.ToByteArray(), request.SelfMaskCommitment.ToByteArray());
        }

        return Task.FromResult(new Ack());
    }

    public override Task<AdvertisementSet> AwaitAdvertisements(StageQuery request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(AwaitAdvertisements));
        RoundState s = Current;
        var set = new AdvertisementSet { Header = s.Reply(Stage.AdvertiseKeys) };
        lock (_gate)
        {
            set.Advertisements.AddRange(s.Advertisements.Values.OrderBy(a => a.Sender).Select(a => new Advertisement
            {
                Sender = (uint)a.Sender,
                EncryptionPublicKey = ByteString.CopyFrom(a.EncryptionPublicKey),
                MaskingPublicKey = ByteString.CopyFrom(a.MaskingPublicKey),
                Signature = ByteString.CopyFrom(a.Signature),
                SelfMaskCommitment = ByteString.CopyFrom(a.SelfMaskCommitment),
            }));
        }

        return Task.FromResult(set);
    }

    public override Task<Ack> ShareKeys(ShareKeysRequest request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(ShareKeys));
        return Task.FromResult(new Ack());
    }

    public override Task<ShareSet> AwaitShares(StageQuery request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(AwaitShares));
        RoundState s = Current;
        var set = new ShareSet { Header = s.Reply(Stage.ShareKeys) };
        lock (_gate)
        {
            // The simulated peers encrypt their shares for the agent (index 1) against everyone's advertisements (once).
            if (s.SharesForAgent.Count == 0)
            {
                KeyAdvertisement[] all = [.. s.Advertisements.Values.OrderBy(a => a.Sender)];
                foreach (ClientRound peer in s.Peers)
                {
                    s.SharesForAgent.AddRange(peer.ShareKeys(all).Where(x => x.Recipient == 1));
                }
            }

            set.Shares.AddRange(s.SharesForAgent.Select(x => new EncryptedShareMessage { Sender = (uint)x.Sender, Recipient = 1, Ciphertext = ByteString.CopyFrom(x.Ciphertext) }));
        }

        return Task.FromResult(set);
    }

    public override async Task<Ack> UploadMaskedInput(IAsyncStreamReader<MaskedInputChunk> requestStream, ServerCallContext context)
    {
        long round = 0;
        while (await requestStream.MoveNext(context.CancellationToken))
        {
            round = requestStream.Current.Header?.Round is { } r && r > 0 ? (long)r : round;
        }

        Record(round, nameof(UploadMaskedInput));
        return new Ack();
    }

    public override Task<SurvivorSet> AwaitSurvivors(StageQuery request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(AwaitSurvivors));
        var set = new SurvivorSet { Header = Current.Reply(Stage.MaskedInput) };
        set.Survivors.AddRange(SignedSurvivors.Select(i => (uint)i));
        return Task.FromResult(set);
    }

    public override Task<Ack> SignSurvivors(ConsistencyRequest request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(SignSurvivors));
        RoundState s = Current;
        lock (_gate)
        {
            s.AgentSignature = request.Signature.ToByteArray();
        }

        return Task.FromResult(new Ack());
    }

    public override Task<UnmaskRequestMessage> AwaitUnmaskRequest(StageQuery request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(AwaitUnmaskRequest));
        RoundState s = Current;
        int n = _sites.Count;
        int[] all = [.. Enumerable.Range(1, n)];
        (int[] survivors, int[] dropped, int[] signers) = Now(s.Round) switch
        {
            AggregatorMisbehaviour.BothSharesOfPeer => (all, [2], all),
            AggregatorMisbehaviour.UnsignedSurvivorSet => (all[..^1], [n], all[..^1]),
            AggregatorMisbehaviour.TooFewSignatures => (all, [], all[..(s.Parameters.Threshold - 1)]),
            _ => (all, Array.Empty<int>(), all),
        };
        var message = new UnmaskRequestMessage { Header = s.Reply(Stage.Consistency) };
        message.Survivors.AddRange(survivors.Select(i => (uint)i));
        message.Dropped.AddRange(dropped.Select(i => (uint)i));
        foreach (int signer in signers)
        {
            byte[] signature = signer == 1
                ? s.AgentSignature ?? []
                : _peerKits[_sites[signer - 1]].IdentityKey.Sign(ProtocolLabels.ConsistencyTranscript(s.Parameters, signer, survivors));
            if (signer == 3 && Now(s.Round) == AggregatorMisbehaviour.ForgedSignature)
            {
                signature[17] ^= 0x20;
            }

            message.Signatures.Add(new ConsistencySignatureMessage { Sender = (uint)signer, Signature = ByteString.CopyFrom(signature) });
        }

        return Task.FromResult(message);
    }

    public override Task<Ack> Unmask(UnmaskResponseMessage request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(Unmask));
        return Task.FromResult(new Ack());
    }

    public override Task<RoundOutcome> AwaitRoundOutcome(StageQuery request, ServerCallContext context)
    {
        Record(request.Header.Round, nameof(AwaitRoundOutcome));
        RoundState s = Current;
        var outcome = new RoundOutcome { Header = s.Reply(Stage.Unmasking), Completed = true, ModelVersion = (ulong)s.Round, ModelSha256 = WireEncoding.ModelDigest(Model(s.Round)) };
        if (AbortReason?.Invoke(s.Round) is string abortReason)
        {
            outcome = new RoundOutcome { Header = s.Reply(Stage.Unmasking), Completed = false, AbortReason = abortReason };
        }

        outcome.Contributors.AddRange(_sites);
        return Task.FromResult(outcome);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _current?.Dispose();
            _current = null;
        }
    }

    private RoundState Current
    {
        get
        {
            lock (_gate)
            {
                return _current ?? throw new RpcException(new Status(StatusCode.FailedPrecondition, "no round is open"));
            }
        }
    }

    private void Record(ulong round, string call) => Record((long)round, call);

    private void Record(long round, string call)
    {
        lock (_gate)
        {
            _received.Add((round, call));
        }
    }

    /// <summary>One round: parameters, announcement, the simulated peers' protocol state.</summary>
    private sealed class RoundState : IDisposable
    {
        public RoundState(MaliciousAggregatorService owner, long round)
        {
            Round = round;
            Owner = owner;
            int n = owner._sites.Count;
            int d = owner._parameters;
            GraphPlan plan = owner.Now(round) == AggregatorMisbehaviour.SmallSparseGraph ? new GraphPlan(n, 2, 2, false) : GraphPlanner.Plan(n);
            const double clip = 10;
            const double noise = 0.5;
            double headroom = DistributedDp.HeadroomStandardDeviations * noise * clip * 1.1 * Math.Sqrt((double)n / plan.Threshold);
            UpdateCodec codec = UpdateCodec.Plan(d, clip, n, headroom, 1000);
            DistributedDpPlan dp = DistributedDp.Plan(clip, codec.Scale, d, n, plan.Threshold, noise);
            Participant[] participants = [.. owner._sites.Select((name, i) =>
            {
                owner._manifest.TryGetSite(name, out PartyInfo info);
                return new Participant(i + 1, name, info.IdentityPublicKey);
            })];
            AggregatorMisbehaviour split = owner.Now(round);
            (uint maxSteps, uint shares) = split switch
            {
                AggregatorMisbehaviour.SplitNoise or AggregatorMisbehaviour.SplitNoiseHiddenFromPeers => (1u, 2u),
                AggregatorMisbehaviour.SplitNoiseManySteps => (0u, 2u),
                AggregatorMisbehaviour.SplitNoiseAboveThreshold => (1u, (uint)plan.Threshold + 1),
                _ => (0u, 0u),
            };
            float[] layerScales = split switch
            {
                AggregatorMisbehaviour.LayerScales or AggregatorMisbehaviour.LayerScalesHiddenFromPeers => MaliciousAggregatorTests.AnnouncedLayerScales,
                AggregatorMisbehaviour.LayerScalesWrongCount => MaliciousAggregatorTests.AnnouncedLayerScales[1..],
                AggregatorMisbehaviour.LayerScalesOutOfRange => [.. MaliciousAggregatorTests.AnnouncedLayerScales[..^1], 1e9f],
                _ => [],
            };
            Parameters = split is AggregatorMisbehaviour.SplitNoise
                ? new RoundParameters(owner._federation, round, $"session-{round:D2}-{Guid.NewGuid():N}", participants, plan.Threshold, plan.Degree, codec.VectorLength, codec.BitWidth, null, (int)maxSteps, (int)shares)
                : split is AggregatorMisbehaviour.LayerScales
                ? new RoundParameters(owner._federation, round, $"session-{round:D2}-{Guid.NewGuid():N}", participants, plan.Threshold, plan.Degree, codec.VectorLength, codec.BitWidth, dpSgdLayerScales: layerScales)
                : new RoundParameters(owner._federation, round, $"session-{round:D2}-{Guid.NewGuid():N}", participants, plan.Threshold, plan.Degree, codec.VectorLength, codec.BitWidth);

            // The model this round announces and the one it streams (they differ when the aggregator lies).
            float[] announced = owner.TamperModel?.Invoke(round, owner.Model(round - 1)) ?? owner.Model(round - 1);
            StreamedModel = announced;
            AggregatorMisbehaviour now = owner.Now(round);
            if (now == AggregatorMisbehaviour.ModelWrongLength)
            {
                announced = [.. announced, 0.5f, 0.25f, 0.125f];
                StreamedModel = announced;
            }
            else if (now == AggregatorMisbehaviour.ModelWrongDigest)
            {
                StreamedModel = (float[])announced.Clone();
                StreamedModel[7] += 1f;
            }

            Announcement = new RoundAnnouncement
            {
                Header = new Header { FederationId = owner._federation, Round = (ulong)round, SessionId = Parameters.SessionId, Stage = Stage.Announce, Sender = "aggregator" },
                Threshold = (uint)plan.Threshold,
                GraphDegree = (uint)plan.Degree,
                VectorLength = (uint)codec.VectorLength,
                BitWidth = (uint)codec.BitWidth,
                QuantClip = codec.ClipBound,
                QuantScale = codec.Scale,
                WeightCap = (uint)codec.WeightCap,
                DpSgd = new DpSgdSettings { NoiseMultiplier = 1.0, MaxGradNorm = 1.0, SampleRate = 0.05, LocalEpochs = 1, MaxSteps = maxSteps, NoiseShares = shares, LayerScales = { layerScales } },
                SiteDp = new SiteDpSettings { L2Clip = clip, NoiseSigmaSite = dp.SigmaSite, TargetNoiseMultiplier = noise, Delta = 1e-5 },
                ModelVersion = (ulong)(round - 1),
                ModelSha256 = WireEncoding.ModelDigest(announced),
                ParameterCount = (uint)d,
                ModelSpecSha256 = FakeTrainer.SpecSha,
                ProtocolVersion = now == AggregatorMisbehaviour.OldProtocolVersion ? 1u : ProtocolLabels.ProtocolVersion,
                StageDeadlineUnixMs = DateTimeOffset.UtcNow.AddSeconds(20).ToUnixTimeMilliseconds(),
                StageTimeoutSeconds = 5,
            };
            Announcement.Participants.AddRange(participants.Select(p => new ParticipantInfo { Index = (uint)p.Index, Name = p.Name, IdentityPublicKey = ByteString.CopyFrom(p.IdentityPublicKey) }));
            owner.Tamper?.Invoke(round, Announcement);

            // The simulated peers advertise honestly.
            Peers = [.. owner._sites.Skip(1).Select(name => new ClientRound(Parameters, name, owner._peerKits[name].IdentityKey))];
            foreach (ClientRound peer in Peers)
            {
                KeyAdvertisement ad = peer.AdvertiseKeys();
                Advertisements[ad.Sender] = ad;
            }
        }

        public MaliciousAggregatorService Owner { get; }

        public long Round { get; }

        public RoundParameters Parameters { get; }

        public RoundAnnouncement Announcement { get; }

        public float[] StreamedModel { get; }

        public List<ClientRound> Peers { get; }

        public Dictionary<int, KeyAdvertisement> Advertisements { get; } = [];

        public List<EncryptedShare> SharesForAgent { get; } = [];

        public byte[]? AgentSignature { get; set; }

        public Header Reply(Stage stage) => new() { FederationId = Owner._federation, Round = (ulong)Round, SessionId = Parameters.SessionId, Stage = stage, Sender = "aggregator" };

        public void Dispose()
        {
            foreach (ClientRound peer in Peers)
            {
                peer.Dispose();
            }
        }
    }
}
