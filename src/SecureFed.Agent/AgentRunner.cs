using System.Globalization;
using System.Diagnostics;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;
using SecureFed.Audit;
using SecureFed.Crypto;
using SecureFed.Federation;
using SecureFed.Privacy;
using SecureFed.Tagger;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Agent;

/// <summary>
/// The agent's round loop: wait for a round, check it against the hospital's own policy and privacy budget, train
/// locally with DP-SGD, clip and noise the update, and run the secure-aggregation protocol with the aggregator. Every
/// message that leaves the site is audited (type, size, SHA-256 of the exact bytes).
/// </summary>
public sealed class AgentRunner
{
    private readonly AgentOptions _options;
    private readonly PartyKit _kit;
    private readonly AggregatorClient _client;
    private readonly ILocalTrainer _trainer;
    private readonly PrivacyLedger _ledger;
    private readonly AuditLog _audit;
    private readonly ILogger _logger;
    private float[]? _model;
    private long _modelVersion = -1;

    /// <summary>The announced model specification the agent last explained a mismatch with (once per spec, not per round).</summary>
    private string? _explainedSpecMismatch;
    private double _lastNorm = double.NaN;

    /// <summary>Set by every decline of a round: the next AwaitRound waits <see cref="AbortedPollPause"/> first.</summary>
    private bool _declined;
    private Activity? _roundActivity;

    /// <summary>Creates the runner.</summary>
    public AgentRunner(AgentOptions options, PartyKit kit, AggregatorClient client, ILocalTrainer trainer, PrivacyLedger ledger, AuditLog audit, ILogger logger)
    {
        _options = options;
        _kit = kit;
        _client = client;
        _trainer = trainer;
        _ledger = ledger;
        _audit = audit;
        _logger = logger;
    }

    /// <summary>Raised after every round this site took part in (or declined).</summary>
    public event EventHandler<AgentRoundReport>? RoundFinished;

    /// <summary>The agent's metrics (training time and throughput, bytes sent, rounds); none when null.</summary>
    public AgentTelemetry? Telemetry { get; init; }

    /// <summary>Optional fault injection (demo and tests).</summary>
    public DropoutHook? Dropout { get; set; }

    /// <summary>Test hook: sees each privatized input vector (quantized, clipped, weighted, noised) before masking.</summary>
    internal Action<long, uint[]>? InputCaptured { get; set; }

    /// <summary>Test hook: the randomness of stochastic rounding and of the site-level noise (a seeded source makes an input reproducible).</summary>
    internal IRandomSource UpdateRandom { get; set; } = SystemRandomSource.Instance;

    /// <summary>Test hook: the clock the site's certificate is checked against before each round.</summary>
    internal TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>The last global model received (flat parameters), if any.</summary>
    public float[]? LatestModel => _model;

    /// <summary>Runs until the federation finishes, <see cref="AgentOptions.MaxRounds"/> is reached, or cancellation.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        long lastRound = 0;
        int rounds = 0;
        int unreachable = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            // Before each round: a certificate that expired while the agent ran is refused at the next connection, which
            // would look like an outage; stop and say so instead.
            if (AggregatorTrustException.OwnCertificateOutOfDate(_kit.TlsCertificate, _options, Time.GetUtcNow()) is { } outOfDate)
            {
                throw outOfDate;
            }

            RoundAnnouncement announcement;
            TimeSpan pollWait = TimeSpan.FromMinutes(5);
            long polled = Stopwatch.GetTimestamp();
            try
            {
                announcement = await _client.AwaitRoundAsync(
                    new AwaitRoundRequest
                    {
                        Header = Header(lastRound, "", Stage.Announce),
                        HaveModelVersion = (ulong)Math.Max(0, _modelVersion),
                        SpeaksProtocolVersion = SpeaksProtocolVersion > ProtocolLabels.ProtocolVersion ? SpeaksProtocolVersion : 0,
                    },
                    pollWait, cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.DeadlineExceeded or StatusCode.Aborted)
            {
                // Aborted: a newer long-poll of this site replaced this one at the aggregator (one waiting call per site).
                // A short pause: an aggregator answering ABORTED at once would otherwise be called in a busy loop. So is
                // one answering DEADLINE_EXCEEDED long before the call's own deadline (hostile-aggregator review: thousands
                // of calls a minute); a long-poll that did wait out its deadline is asked again at once.
                if (ex.StatusCode == StatusCode.Aborted || Stopwatch.GetElapsedTime(polled) < pollWait / 2)
                {
                    await Task.Delay(AbortedPollPause, cancellationToken).ConfigureAwait(false);
                }

                continue;
            }
            catch (RpcException ex) when (cancellationToken.IsCancellationRequested && ex.StatusCode == StatusCode.Cancelled)
            {
                // The operator stopped the agent (Ctrl-C) while it waited for a round: a clean stop, not a failure.
                throw new OperationCanceledException("the agent was stopped while it waited for a round", ex, cancellationToken);
            }
            catch (RpcException ex) when (AggregatorTrustException.From(ex, _options, _client.CurrentEndpoint, _client.LastCertificateRejection) is { } trust)
            {
                // Not an outage: the TLS handshake failed (a kit of another federation, or a certificate the aggregator refuses).
                // Waiting would not help; stop and say which certificate to check.
                throw trust;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.PermissionDenied)
            {
                throw new AggregatorRefusedSiteException(_options.Site, ex);
            }
            catch (Exception ex) when (ex is RpcException { StatusCode: StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown or StatusCode.ResourceExhausted or StatusCode.Cancelled } or BrokenCircuitException)
            {
                // The aggregator is down, restarting or not started yet (after many failed calls the client's circuit
                // breaker opens and refuses calls for a while): an agent is a long-running service, so it keeps waiting.
                // RESOURCE_EXHAUSTED (an overloaded aggregator) and CANCELLED from its side (this agent is not stopping:
                // that case is caught above) are waited out the same way; before, they stopped the agent with a stack trace.
                unreachable++;
                TimeSpan wait = UnreachableWait(unreachable);
                string why = ex is RpcException rpc ? AggregatorText.ForLog(rpc.Status.Detail) : "its last calls all failed, so the client pauses calls for a few seconds";
                Log.Unreachable(_logger, _options.Site, _client.CurrentEndpoint.ToString(), why, wait.TotalSeconds, unreachable);
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                continue;
            }
            catch (RpcException ex)
            {
                // Any other status (NOT_FOUND, UNIMPLEMENTED, INVALID_ARGUMENT, ...) is not an outage waiting would end:
                // stop with one line naming the aggregator's answer, not a stack trace from deep inside the host.
                throw new AggregatorUnexpectedStatusException(_client.CurrentEndpoint.ToString(), "AwaitRound", ex);
            }

            unreachable = 0;

            if (announcement.Finished)
            {
                Log.FederationFinished(_logger, _options.Site);
                return;
            }

            // Without its header the round is declined (RunRoundAsync) as round 0, the round being unknown, and a round far
            // beyond the ledger's last is declined too: the next AwaitRound asks again after the same round as this one,
            // so a hostile round number does not become the agent's place in the federation.
            if (announcement.Header is not null && RoundsAheadProblem(announcement.Header.Round, LedgerLastRound()) is null)
            {
                lastRound = (long)announcement.Header.Round;
            }

            _declined = false;
            await RunRoundAsync(announcement, cancellationToken).ConfigureAwait(false);
            if (_declined)
            {
                // After any decline a short pause: an aggregator that answers every poll at once with an announcement
                // this site declines would otherwise be called in a busy loop (hostile-aggregator review: thousands of
                // calls and signed audit lines a minute).
                await Task.Delay(AbortedPollPause, cancellationToken).ConfigureAwait(false);
            }

            if (_options.MaxRounds > 0 && ++rounds >= _options.MaxRounds)
            {
                return;
            }
        }
    }

    /// <summary>The outcome of a round the operator stopped the agent in (Ctrl-C).</summary>
    public const string StoppedOutcome = "stopped by the operator";

    /// <summary>
    /// The pause before asking for a round again after AwaitRound was answered ABORTED, DEADLINE_EXCEEDED well before the
    /// call's deadline, or with an announcement this site declined.
    /// </summary>
    /// <value>The default value is 200 milliseconds.</value>
    internal TimeSpan AbortedPollPause { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The first wait after the aggregator could not be reached; it doubles with every failed attempt.</summary>
    /// <value>The default value is 2 seconds.</value>
    internal TimeSpan FirstUnreachableWait { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest wait between attempts to reach the aggregator.</summary>
    /// <value>The default value is 30 seconds.</value>
    internal TimeSpan MaxUnreachableWait { get; set; } = TimeSpan.FromSeconds(30);

    private TimeSpan UnreachableWait(int attempt)
    {
        double factor = Math.Pow(2, Math.Min(attempt - 1, 16));
        return TimeSpan.FromTicks((long)Math.Min(MaxUnreachableWait.Ticks, FirstUnreachableWait.Ticks * factor));
    }

    private async Task RunRoundAsync(RoundAnnouncement a, CancellationToken cancellationToken)
    {
        long round = (long)(a.Header?.Round ?? 0); // 0: an announcement without its header, declined at once
        long bytesSent = 0;
        double loss = double.NaN;
        double devF1 = double.NaN;
        ClientRound? protocol = null;
        // One trace per round, a span per stage; the calls made in a stage carry its context to the aggregator.
        using Activity? roundActivity = AgentTelemetry.StartRound(_kit.Manifest.FederationName, _options.Site, round);
        _roundActivity = roundActivity;
        Activity? stageActivity = AgentTelemetry.NextStage(roundActivity, null, "announce");
        try
        {
            // 1. The announcement must match this site's manifest and policy.
            (RoundParameters parameters, DistributedDpPlan dpPlan, UpdateCodec codec, string? refusal) = Check(a);
            if (refusal is not null)
            {
                await DeclineAsync(a, refusal, cancellationToken).ConfigureAwait(false);
                Report(round, false, "declined: " + refusal, loss, devF1, bytesSent);
                return;
            }

            var plan = new LocalTrainingPlan(round, (int)a.DpSgd.LocalEpochs, a.DpSgd.NoiseMultiplier, a.DpSgd.MaxGradNorm, a.DpSgd.SampleRate)
            {
                EvaluationCountCap = codec.Evaluation is { } evaluation && _options.FederatedEvaluation ? evaluation.CountCap : 0,
                MaxSteps = parameters.DpSgdMaxSteps,
                NoiseShares = parameters.DpSgdNoiseShares,
                LayerScales = parameters.DpSgdLayerScales,
            };
            long expectedSteps = _trainer.ExpectedSteps(plan);
            var recordPlanned = PlannedMechanism.SubsampledGaussian(plan.SampleRate, plan.NoiseMultiplier, expectedSteps);
            LedgerDecision recordCheck = _ledger.Check(Guarantee.Record, recordPlanned, _options.EpsilonBudget, _options.Delta);
            double rhoWorst = DistributedDp.RhoPerRound(dpPlan, parameters.Threshold);
            LedgerDecision siteCheck = _ledger.Check(Guarantee.Site, PlannedMechanism.Zcdp(rhoWorst), _options.SiteEpsilonBudget, _options.Delta);
            // A site that accepts split noise also caps its collusion ε (the steps at the noise it adds itself).
            LedgerDecision? collusionCheck = _options.AcceptSplitPatientNoise
                ? _ledger.Check(Guarantee.RecordCollusion, PlannedMechanism.SubsampledGaussian(plan.SampleRate, plan.SiteNoiseMultiplier, expectedSteps), _options.MaxCollusionEpsilon, _options.Delta)
                : null;
            if (!recordCheck.Allowed || !siteCheck.Allowed || collusionCheck is { Allowed: false })
            {
                string reason = !recordCheck.Allowed ? recordCheck.Reason : !siteCheck.Allowed ? siteCheck.Reason : collusionCheck!.Value.Reason;
                await DeclineAsync(a, reason, cancellationToken).ConfigureAwait(false);
                Report(round, false, "declined: " + reason, loss, devF1, bytesSent, budgetSpent: true);
                return;
            }

            Log.Joined(_logger, _options.Site, round, parameters.CohortSize, parameters.Threshold);
            _audit.Append(AuditEvents.RoundJoined, f => f.Add("round", round).Add("session", parameters.SessionId).Add("cohort", parameters.Participants.Select(p => p.Name))
                .Add("dp_sgd_layer_scales", parameters.DpSgdLayerScales.Count).Add("dp_sgd_layer_scales_sha256", parameters.DpSgdLayerScales.Count == 0 ? "" : RoundParameters.LayerScalesSha256(parameters.DpSgdLayerScales)));

            // While it fetches the model and trains, the site says every so often that it is still at work, so that the
            // others need not wait out the training deadline if it crashes (docs/PROTOCOL.md "Training progress").
            await using ProgressReporter? progress = ProgressReporter.Start(_client, Header(round, parameters.SessionId, Stage.AdvertiseKeys), a.ProgressIntervalSeconds, _logger, cancellationToken);

            // 2. The global model.
            float[] global;
            try
            {
                global = await EnsureModelAsync(a, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (cancellationToken.IsCancellationRequested)
            {
                // Stopped while the model downloads: nothing has left the site, so it declines as when stopped in training.
                await DeclineOnStopAsync(a).ConfigureAwait(false);
                Report(round, false, StoppedOutcome, loss, devF1, bytesSent);
                throw new OperationCanceledException("the agent was stopped while it downloaded the model", ex, cancellationToken);
            }

            // 3. Local training with DP-SGD (patient-level guarantee).
            stageActivity = AgentTelemetry.NextStage(roundActivity, stageActivity, "training");
            LocalUpdate update;
            try
            {
                long started = Stopwatch.GetTimestamp();
                update = await Task.Run(() => _trainer.Train(global, plan, cancellationToken), cancellationToken).ConfigureAwait(false);
                if (update.Examples < 1)
                {
                    // Every honest weight slot holds at least 1, so the aggregator can refuse a sum whose W is below the
                    // number of contributors (a wrapped weight slot, PROTOCOL.md "The W bound"): with no examples, withdraw.
                    throw new InvalidOperationException($"the local trainer used {update.Examples} training examples; a site contributes at least one");
                }

                if (FirstNonFinite(update.Delta) is int bad)
                {
                    // Before: PrivatizeUpdate refused it after this block, so the agent stopped with a stack trace and
                    // without withdrawing (the others waited for its silence to be noticed).
                    throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                        $"local training diverged: the update has a non-finite value ({update.Delta[bad]}) at index {bad} of {update.Delta.Length}; nothing was sent. Lower SecureFed:LearningRate (now {_options.LearningRate}) or train the recipe's model (docs/utility.md, \"Recipe\")"));
                }

                Telemetry?.Trained(Stopwatch.GetElapsedTime(started), update.TokensPerSecond);
            }
            catch (Exception ex) when (cancellationToken.IsCancellationRequested)
            {
                // The operator stopped the agent while it trained. Whatever the trainer threw on the way out (the
                // cancellation, or an error of native code that was interrupted) is not a training failure and is not
                // recorded as one. Nothing has left the site yet, so it declines the round, saying it was stopped: the
                // others go on without waiting for the training deadline (up to TrainingTimeoutSeconds) to pass.
                await DeclineOnStopAsync(a).ConfigureAwait(false);
                Report(round, false, StoppedOutcome, loss, devF1, bytesSent);
                throw new OperationCanceledException("the agent was stopped while it trained", ex, cancellationToken);
            }
            catch (Exception ex)
            {
                // Nothing was released (no ledger entry). Withdraw at once so the others need not wait for the
                // training deadline, then stop this agent: the failure is reported, not retried.
                var failure = new LocalTrainingException(_options.Site, round, ex);
                Log.TrainingFailed(_logger, _options.Site, round, ex);
                using (var withdraw = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                {
                    withdraw.CancelAfter(TimeSpan.FromSeconds(5));
                    try
                    {
                        await DeclineAsync(a, failure.Message, withdraw.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                    {
                        // The aggregator did not answer in time: it will see this site as a dropout at the deadline.
                    }
                }

                Report(round, false, "failed: " + failure.Message, loss, devF1, bytesSent);
                throw failure;
            }

            loss = update.Loss;
            devF1 = update.GlobalDevF1;

            // 4. Site-level privatisation: clip to S, weight, quantize, add this site's discrete Gaussian share.
            uint[] input = new uint[codec.VectorLength];
            // The received model's dev counts (federated evaluation) ride in their own exact slots; zeros when opted out.
            EvaluationCounts? counts = _options.FederatedEvaluation ? update.GlobalDevCounts : null;
            _lastNorm = FederatedAveraging.PrivatizeUpdate(update.Delta, update.Examples, counts, codec, a.SiteDp.L2Clip, a.SiteDp.NoiseSigmaSite, UpdateRandom, input);

            uint declaredWeight = input[codec.ParameterCount]; // the weight slot, declared outside the sum with the keys
            InputCaptured?.Invoke(round, (uint[])input.Clone());

            // 5. Secure aggregation.
            protocol = new ClientRound(parameters, _options.Site, _kit.IdentityKey) { Colluders = _options.ColludingSites };
            TimeSpan stageWait = TimeSpan.FromSeconds(a.StageTimeoutSeconds + 30);
            DateTimeOffset trainingDeadline = DateTimeOffset.FromUnixTimeMilliseconds(a.StageDeadlineUnixMs);
            if (progress is not null)
            {
                await progress.DisposeAsync().ConfigureAwait(false); // training is over: the keys, or silence, follow
            }

            if (Drops(round, ProtocolStage.AdvertiseKeys))
            {
                Report(round, false, "simulated dropout", loss, devF1, bytesSent);
                return;
            }

            stageActivity = AgentTelemetry.NextStage(roundActivity, stageActivity, "advertise_keys");
            KeyAdvertisement ad = protocol.AdvertiseKeys();
            var adRequest = new AdvertiseKeysRequest
            {
                Header = Header(round, parameters.SessionId, Stage.AdvertiseKeys),
                EncryptionPublicKey = ByteString.CopyFrom(ad.EncryptionPublicKey),
                MaskingPublicKey = ByteString.CopyFrom(ad.MaskingPublicKey),
                Signature = ByteString.CopyFrom(ad.Signature),
                SelfMaskCommitment = ByteString.CopyFrom(ad.SelfMaskCommitment),
                Weight = declaredWeight, // checked against the decoded W, so no site's weight slot can scale the average
            };
            bytesSent += Sent(round, "advertise_keys", adRequest);
            await _client.AdvertiseKeysAsync(adRequest, cancellationToken).ConfigureAwait(false);

            TimeSpan untilTrainingDeadline = trainingDeadline - DateTimeOffset.UtcNow;
            AdvertisementSet ads = await _client.AwaitAdvertisementsAsync(Query(round, parameters, Stage.AdvertiseKeys),
                (untilTrainingDeadline > TimeSpan.Zero ? untilTrainingDeadline : TimeSpan.Zero) + stageWait, cancellationToken).ConfigureAwait(false);
            if (Drops(round, ProtocolStage.ShareKeys))
            {
                Report(round, false, "simulated dropout", loss, devF1, bytesSent);
                return;
            }

            stageActivity = AgentTelemetry.NextStage(roundActivity, stageActivity, "share_keys");
            IReadOnlyList<EncryptedShare> shares = protocol.ShareKeys([.. ads.Advertisements.Select(x => new KeyAdvertisement((int)x.Sender, x.EncryptionPublicKey.ToByteArray(), x.MaskingPublicKey.ToByteArray(), x.Signature.ToByteArray(), x.SelfMaskCommitment.ToByteArray()))]);
            var shareRequest = new ShareKeysRequest { Header = Header(round, parameters.SessionId, Stage.ShareKeys) };
            shareRequest.Shares.AddRange(shares.Select(s => new EncryptedShareMessage { Sender = (uint)s.Sender, Recipient = (uint)s.Recipient, Ciphertext = ByteString.CopyFrom(s.Ciphertext) }));
            bytesSent += Sent(round, "share_keys", shareRequest);
            await _client.ShareKeysAsync(shareRequest, cancellationToken).ConfigureAwait(false);

            ShareSet forMe = await _client.AwaitSharesAsync(Query(round, parameters, Stage.ShareKeys), stageWait, cancellationToken).ConfigureAwait(false);
            if (Drops(round, ProtocolStage.MaskedInputCollection))
            {
                Report(round, false, "simulated dropout", loss, devF1, bytesSent);
                return;
            }

            stageActivity = AgentTelemetry.NextStage(roundActivity, stageActivity, "masked_input");
            uint[] masked = new uint[codec.VectorLength];
            EncryptedShare[] envelopes = [.. forMe.Shares.Select(s => new EncryptedShare((int)s.Sender, (int)s.Recipient, s.Ciphertext.ToByteArray()))];
            try
            {
                protocol.MaskInput(envelopes, input, masked);
            }
            catch (ProtocolViolationException ex) when (ex.Party is int party)
            {
                // A peer's envelope is invalid: say whom this site blames, verifiably, before leaving the round.
                bytesSent += await AccuseAsync(a, protocol, envelopes, party, ex.Message, cancellationToken).ConfigureAwait(false);
                throw;
            }

            CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(input.AsSpan()));
            byte[] digest = WireEncoding.VectorDigest(masked);
            string sha = Convert.ToHexStringLower(digest);
            // Version 4: the slices' digests too, as the aggregator's masked_input.received lists them.
            SliceUploads? slices = a.ProtocolVersion == SliceUploadVersion ? a.SliceUploads : null;
            string[] sliceDigests = slices is null ? [] : [.. Enumerable.Range(0, slices.Endpoints.Count).Select(k =>
                Convert.ToHexStringLower(WireEncoding.VectorDigest(SliceOf(masked, (int)slices.SliceSize, k).Span)))];
            _audit.Append(AuditEvents.MessageSent, f =>
            {
                f.Add("round", round).Add("message_type", AuditEvents.MaskedInputMessageType).Add("bytes", 4L * masked.Length).Add("sha256", sha);
                if (slices is not null)
                {
                    f.Add("slices_sha256", sliceDigests);
                }
            });
            bytesSent += 4L * masked.Length;
            Telemetry?.Sent(AuditEvents.MaskedInputMessageType, 4L * masked.Length);
            // The DP-SGD output is released (inside the masked sum) from here on: account it now.
            // With split noise the collusion entry (this site's own σ/√k) goes first: the record entry that follows it
            // in the same round then counts only for the sum's guarantee (PrivacyLedger, Guarantee.RecordCollusion).
            if (plan.NoiseShares >= 2)
            {
                _ledger.Append(round, Guarantee.RecordCollusion, PlannedMechanism.SubsampledGaussian(update.SampleRate, plan.SiteNoiseMultiplier, Math.Max(1, update.DpSteps)), _options.Delta);
            }

            LedgerEntry recordEntry = _ledger.Append(round, Guarantee.Record, PlannedMechanism.SubsampledGaussian(update.SampleRate, plan.NoiseMultiplier, Math.Max(1, update.DpSteps)), _options.Delta);
            double collusionEpsilon = _ledger.Spent(Guarantee.RecordCollusion, _options.Delta).Epsilon;
            _audit.Append(AuditEvents.PrivacyLedger, f => f.Add("round", round).Add("guarantee", "record").Add("epsilon", recordEntry.EpsilonAfter).Add("delta", _options.Delta).Add("budget", _options.EpsilonBudget).Add("steps", update.DpSteps).Add("sample_rate", update.SampleRate).Add("noise_multiplier", plan.NoiseMultiplier)
                .Add("noise_shares", Math.Max(1, plan.NoiseShares)).Add("site_noise_multiplier", plan.SiteNoiseMultiplier).Add("collusion_epsilon", collusionEpsilon).Add("collusion_budget", _options.MaxCollusionEpsilon)
                // The sum is exactly one DP-SGD step over the sites' data only when every step reaches it through the same
                // linear map: not clipped by S and weighted by its example count (not capped). Recorded, not enforced.
                .Add("update_clipped", update.Examples > 0 && _lastNorm > a.SiteDp.L2Clip).Add("weight_capped", update.Examples > a.WeightCap));
            // Only this round's slice endpoints keep a channel (none in version 3): a cluster that announces other
            // endpoints every round would otherwise grow the agent's channels without bound.
            _client.RetainSliceEndpoints(slices is null ? [] : slices.Endpoints.Select(e => new Uri(e)));
            if (slices is null)
            {
                await _client.UploadMaskedInputAsync(Header(round, parameters.SessionId, Stage.MaskedInput), masked, sha, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                // Version 4: slice k to the silo that hosts it; the site has sent its input once every slice is in. The silos in
                // parallel, the slices one silo hosts one after another: a silo reads one upload of a site at a time anyway, and
                // bounds the site's calls in flight (SecureFed:MaxCallsPerSite), however many slices it hosts.
                Header uploadHeader = Header(round, parameters.SessionId, Stage.MaskedInput);
                await Task.WhenAll(Enumerable.Range(0, slices.Endpoints.Count)
                    .GroupBy(k => new Uri(slices.Endpoints[k]).GetLeftPart(UriPartial.Authority), StringComparer.OrdinalIgnoreCase)
                    .Select(async silo =>
                    {
                        foreach (int k in silo)
                        {
                            await _client.UploadMaskedInputSliceAsync(new Uri(slices.Endpoints[k]), uploadHeader, k, SliceOf(masked, (int)slices.SliceSize, k),
                                sliceDigests[k], cancellationToken).ConfigureAwait(false);
                        }
                    })).ConfigureAwait(false);
            }

            SurvivorSet survivors = await _client.AwaitSurvivorsAsync(Query(round, parameters, Stage.MaskedInput), stageWait, cancellationToken).ConfigureAwait(false);
            if (Drops(round, ProtocolStage.ConsistencyCheck))
            {
                Report(round, false, "simulated dropout", loss, devF1, bytesSent);
                return;
            }

            stageActivity = AgentTelemetry.NextStage(roundActivity, stageActivity, "consistency");
            ConsistencySignature signature = protocol.SignSurvivors([.. survivors.Survivors.Select(x => (int)x)]);
            var signRequest = new ConsistencyRequest { Header = Header(round, parameters.SessionId, Stage.Consistency), Signature = ByteString.CopyFrom(signature.Signature) };
            if (codec.Evaluation is not null)
            {
                signRequest.Scored = counts is not null; // the flag this site put into its input, declared outside the sum
            }

            bytesSent += Sent(round, "consistency", signRequest);
            await _client.SignSurvivorsAsync(signRequest, cancellationToken).ConfigureAwait(false);

            UnmaskRequestMessage unmaskRequest = await _client.AwaitUnmaskRequestAsync(Query(round, parameters, Stage.Consistency), stageWait, cancellationToken).ConfigureAwait(false);
            if (Drops(round, ProtocolStage.Unmasking))
            {
                Report(round, false, "simulated dropout", loss, devF1, bytesSent);
                return;
            }

            stageActivity = AgentTelemetry.NextStage(roundActivity, stageActivity, "unmasking");
            UnmaskResponse response = protocol.Unmask(new UnmaskRequest(
                [.. unmaskRequest.Survivors.Select(x => (int)x)],
                [.. unmaskRequest.Dropped.Select(x => (int)x)],
                [.. unmaskRequest.Signatures.Select(s => new ConsistencySignature((int)s.Sender, s.Signature.ToByteArray()))]));
            var unmaskMessage = new UnmaskResponseMessage { Header = Header(round, parameters.SessionId, Stage.Unmasking) };
            unmaskMessage.SelfMaskShares.AddRange(response.SelfMaskShares.Select(s => new RevealedShareMessage { Owner = (uint)s.Owner, Value = ByteString.CopyFrom(s.Value) }));
            unmaskMessage.MaskingKeyShares.AddRange(response.MaskingKeyShares.Select(s => new RevealedShareMessage { Owner = (uint)s.Owner, Value = ByteString.CopyFrom(s.Value) }));
            bytesSent += Sent(round, "unmask", unmaskMessage);

            // Once these shares are out the aggregator can unmask the sum of the survivors' inputs, whatever it reports
            // afterwards (an abort after the sum was read, e.g. at the sum bound, or a lie): the round's site-level cost
            // counts from here, for the survivors named in the signed unmasking request (docs/PROTOCOL.md §6).
            double rho = DistributedDp.RhoPerRound(dpPlan, unmaskRequest.Survivors.Count);
            LedgerEntry siteEntry = _ledger.Append(round, Guarantee.Site, PlannedMechanism.Zcdp(rho), _options.Delta);
            // With the survivors the signed request named: the auditor checks them against the aggregator's own account
            // (an input in the sum whose receipt the aggregator's log hides shows up as a survivor it does not name).
            string[] survivorNames = [.. unmaskRequest.Survivors.Select(i => parameters[(int)i].Name)];
            _audit.Append(AuditEvents.PrivacyLedger, f => f.Add("round", round).Add("guarantee", "site").Add("epsilon", siteEntry.EpsilonAfter).Add("delta", _options.Delta).Add("budget", _options.SiteEpsilonBudget).Add("rho", rho).Add("survivors", survivorNames));
            _audit.Checkpoint();
            await _client.UnmaskAsync(unmaskMessage, cancellationToken).ConfigureAwait(false);

            RoundOutcome outcome = await _client.AwaitOutcomeAsync(Query(round, parameters, Stage.Unmasking), stageWait * 2, cancellationToken).ConfigureAwait(false);
            if (!outcome.Completed)
            {
                string abortReason = AggregatorText.ForLog(outcome.AbortReason); // the aggregator's text
                Log.RoundEnded(_logger, _options.Site, round, abortReason);
                Report(round, false, "aborted: " + abortReason, loss, devF1, bytesSent);
                return;
            }

            Log.RoundDone(_logger, _options.Site, round, "completed", recordEntry.EpsilonAfter, siteEntry.EpsilonAfter);
            Report(round, true, $"completed (model v{outcome.ModelVersion})", loss, devF1, bytesSent, (long)outcome.ModelVersion);
        }
        catch (ProtocolViolationException ex)
        {
            string reason = AggregatorText.ForLog(ex.Message); // may quote the aggregator's messages
            Log.Refused(_logger, _options.Site, round, reason);
            _audit.Append(AuditEvents.Refusal, f => f.Add("round", round).Add("reason", AuditText.Bound(ex.Message, AuditText.ReasonChars)));
            Report(round, false, "refused: " + reason, loss, devF1, bytesSent);
        }
        catch (RoundAbortedException ex)
        {
            Log.RoundEnded(_logger, _options.Site, round, AggregatorText.ForLog(ex.Message));
            Report(round, false, "aborted: " + AggregatorText.ForLog(ex.Reason), loss, devF1, bytesSent);
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.Aborted or StatusCode.FailedPrecondition or StatusCode.DeadlineExceeded or StatusCode.Unavailable)
        {
            string detail = AggregatorText.ForLog(ex.Status.Detail); // the aggregator's text
            Log.RoundEnded(_logger, _options.Site, round, detail);
            Report(round, false, "ended: " + detail, loss, devF1, bytesSent);
        }
        catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Any other refusal or server failure ends this site's part in the round; the agent service goes on.
            string reason = $"{ex.StatusCode}: {AggregatorText.ForLog(ex.Status.Detail)}";
            Log.RoundEnded(_logger, _options.Site, round, reason);
            Report(round, false, "ended: " + reason, loss, devF1, bytesSent);
        }
        catch (BrokenCircuitException ex) when (!cancellationToken.IsCancellationRequested)
        {
            // The client's circuit breaker opened after failed calls (an aggregator or slice endpoint unreachable for a
            // while, e.g. during a restart while this site trained): this round is over for the site; the agent goes on
            // waiting for the next one, as when the aggregator is unreachable between rounds.
            string reason = "the aggregator could not be reached: " + ex.Message;
            Log.RoundEnded(_logger, _options.Site, round, reason);
            Report(round, false, "ended: " + reason, loss, devF1, bytesSent);
        }
        catch (InvalidDataException ex)
        {
            string reason = AggregatorText.ForLog(ex.Message); // may quote the aggregator's text (an announced digest)
            Log.Refused(_logger, _options.Site, round, reason);
            _audit.Append(AuditEvents.Refusal, f => f.Add("round", round).Add("reason", AuditText.Bound(ex.Message, AuditText.ReasonChars)));
            Report(round, false, "refused: " + reason, loss, devF1, bytesSent);
        }
        finally
        {
            protocol?.Dispose();
            stageActivity?.Stop();
            _roundActivity = null;
        }
    }

    /// <summary>
    /// Announced layer scales (docs/PROTOCOL.md, "Layer scales"): none, or one factor in [<see cref="RoundParameters.MinLayerScale"/>, <see cref="RoundParameters.MaxLayerScale"/>] per tensor of this
    /// site's model. They cannot change the privacy guarantee (each example's preconditioned gradient is clipped to C),
    /// only the quality of training, so no opt-in is needed; what does not fit the model is declined.
    /// </summary>
    private string? CheckLayerScales(IReadOnlyList<float> scales)
    {
        if (scales.Count == 0)
        {
            return null;
        }

        if (_trainer.TensorSizes is not { } sizes)
        {
            return $"the round announces {scales.Count} DP-SGD layer scales, but this site's trainer cannot apply layer scales";
        }

        if (scales.Count != sizes.Count)
        {
            return $"the round announces {scales.Count} DP-SGD layer scales, but this site's model has {sizes.Count} parameter tensors";
        }

        for (int i = 0; i < scales.Count; i++)
        {
            if (!(scales[i] >= RoundParameters.MinLayerScale && scales[i] <= RoundParameters.MaxLayerScale))
            {
                return string.Create(CultureInfo.InvariantCulture, $"DP-SGD layer scale {i} is {scales[i]:G}, outside [{RoundParameters.MinLayerScale:G}, {RoundParameters.MaxLayerScale:G}]");
            }
        }

        return null;
    }

    /// <summary>
    /// The protocol version and, for version 4, the slice layout (docs/PROTOCOL.md "Version 4: uploads by slice"): null
    /// when this site can run the round, else why not. Version 4 is version 3's secure aggregation with the masked input
    /// uploaded by slice, so a site that speaks 4 runs 3 too.
    /// </summary>
    internal static string? CheckVersion(RoundAnnouncement a, uint speaks)
    {
        ArgumentNullException.ThrowIfNull(a);
        uint version = Math.Max(1, a.ProtocolVersion);
        if (version == ProtocolLabels.ProtocolVersion)
        {
            return a.SliceUploads is null ? null : "the round announces slice endpoints under protocol version 3; they belong to version 4";
        }

        if (version != SliceUploadVersion || speaks < SliceUploadVersion)
        {
            return $"the round runs protocol version {version}; this site speaks version{(speaks >= SliceUploadVersion ? "s 3 and" : "")} {(speaks >= SliceUploadVersion ? SliceUploadVersion : ProtocolLabels.ProtocolVersion)}";
        }

        SliceUploads? slices = a.SliceUploads;
        if (slices is null || slices.SliceSize < 1)
        {
            return "the round runs protocol version 4 but announces no slice layout (slice_uploads with slice_size ≥ 1)";
        }

        if (slices.SliceSize > int.MaxValue)
        {
            // One slice larger than the vector is a valid layout (a cluster announces its configured size unclamped).
            return $"the round's slice size {slices.SliceSize} exceeds {int.MaxValue} words";
        }

        long count = ((long)a.VectorLength + slices.SliceSize - 1) / slices.SliceSize;
        if (slices.Endpoints.Count != count)
        {
            return $"the round's vector of {a.VectorLength} words in slices of {slices.SliceSize} has {count} slices, but the announcement names {slices.Endpoints.Count} slice endpoints";
        }

        for (int k = 0; k < slices.Endpoints.Count; k++)
        {
            if (!ServiceUrl.TryParseHttps(slices.Endpoints[k], out _, out string problem))
            {
                return $"the endpoint of slice {k} {problem}, got '{slices.Endpoints[k]}'";
            }
        }

        // The agent uploads to every host at once, each over a channel of its own: at slice size 1 an announcement could
        // name one host per word (threat model, "Numbers a hostile aggregator announces").
        int hosts = SliceUploadHosts.Count(slices.Endpoints);
        if (hosts > MaxSliceHosts)
        {
            return $"the round's slice endpoints name {hosts} hosts; this site uploads to at most {MaxSliceHosts}";
        }

        return null;
    }

    /// <summary>
    /// Why a slice endpoint of <paramref name="slices"/> is on a host that is neither one of <paramref name="aggregators"/>
    /// (the endpoints this agent was configured with; any port) nor in <paramref name="allowed"/>
    /// (<see cref="AgentOptions.AllowedSliceHosts"/>), or null. Without it an aggregator could make the agent open a TLS
    /// connection to any host its network reaches (an internal service of the hospital) by naming it as a slice endpoint.
    /// Call after <see cref="CheckVersion"/> (the endpoints are https:// URLs).
    /// </summary>
    internal static string? SliceHostProblem(SliceUploads? slices, IReadOnlyList<Uri> aggregators, IReadOnlyList<string> allowed)
    {
        ArgumentNullException.ThrowIfNull(aggregators);
        ArgumentNullException.ThrowIfNull(allowed);
        if (slices is null)
        {
            return null;
        }

        var hosts = new HashSet<string>(aggregators.Select(e => CanonicalHost(e.Host)), StringComparer.OrdinalIgnoreCase);
        var networks = new List<System.Net.IPNetwork>();
        foreach (string entry in allowed)
        {
            if (entry.Contains('/', StringComparison.Ordinal) && System.Net.IPNetwork.TryParse(entry, out System.Net.IPNetwork network))
            {
                networks.Add(network);
            }
            else
            {
                hosts.Add(CanonicalHost(entry));
            }
        }

        for (int k = 0; k < slices.Endpoints.Count; k++)
        {
            if (!Uri.TryCreate(slices.Endpoints[k], UriKind.Absolute, out Uri? endpoint))
            {
                return $"the endpoint of slice {k} is not a URL, got '{slices.Endpoints[k]}'";
            }

            string host = CanonicalHost(endpoint.Host);
            bool inNetwork = System.Net.IPAddress.TryParse(host, out System.Net.IPAddress? address) && networks.Any(n => n.Contains(address));
            if (!inNetwork && !hosts.Contains(host))
            {
                return $"the endpoint of slice {k} ('{slices.Endpoints[k]}') is on host '{endpoint.Host}', which is neither the aggregator's ({string.Join(", ", aggregators.Select(e => e.Host).Distinct(StringComparer.OrdinalIgnoreCase))}) nor listed in this site's SecureFed:AllowedSliceHosts";
            }
        }

        return null;
    }

    /// <summary>A host as compared for slice endpoints: an IP address in its canonical form (127.1 and 127.0.0.1, [0:0::1] and ::1 alike), a name as written.</summary>
    private static string CanonicalHost(string host)
    {
        string bare = AgentOptions.SliceHost(host);
        return System.Net.IPAddress.TryParse(bare, out System.Net.IPAddress? address) ? address.ToString() : bare;
    }

    /// <summary>The most distinct hosts (scheme, host and port) the slice endpoints of one announcement may name: a cluster's slice silos.</summary>
    internal const int MaxSliceHosts = SliceUploadHosts.Max;

    /// <summary>The protocol version whose masked input is uploaded by slice.</summary>
    internal const uint SliceUploadVersion = 4;

    /// <summary>
    /// The highest protocol version this agent asks for in <c>AwaitRound</c> (4: uploads by slice when the aggregator offers
    /// them). Tests set 3 to behave exactly as a version-3 agent (the field absent, the masked input sent whole).
    /// </summary>
    internal uint SpeaksProtocolVersion { get; set; } = SliceUploadVersion;

    /// <summary>Slice <paramref name="k"/> of <paramref name="words"/> cut into slices of <paramref name="size"/> words.</summary>
    internal static ReadOnlyMemory<uint> SliceOf(uint[] words, int size, int k)
    {
        int offset = (int)Math.Min((long)k * size, words.Length);
        return words.AsMemory(offset, Math.Min(size, words.Length - offset));
    }

    /// <summary>The latest stage deadline an announcement may name, from now (the aggregator's longest training timeout is one day).</summary>
    private static readonly TimeSpan MaxDeadlineAhead = TimeSpan.FromDays(7);

    /// <summary>The index of the first NaN or infinite value of <paramref name="values"/>, or null.</summary>
    internal static int? FirstNonFinite(float[] values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return i;
            }
        }

        return null;
    }

    /// <summary>
    /// The first number of the announcement that is NaN or infinite, named, or null. Every later check compares these
    /// numbers, and a NaN passes every "is below" comparison: a NaN site noise left the update without site-level noise
    /// while the ledgers were charged for it (review of session 45), and other NaNs stopped the agent from deep inside.
    /// </summary>
    internal static string? NonFiniteSetting(RoundAnnouncement a)
    {
        ArgumentNullException.ThrowIfNull(a);
        (string Name, double Value)[] numbers =
        [
            ("DP-SGD noise multiplier", a.DpSgd?.NoiseMultiplier ?? 0), ("DP-SGD clip", a.DpSgd?.MaxGradNorm ?? 0), ("DP-SGD sample rate", a.DpSgd?.SampleRate ?? 0),
            ("site update clip S", a.SiteDp?.L2Clip ?? 0), ("per-site noise σ", a.SiteDp?.NoiseSigmaSite ?? 0),
            ("site noise multiplier", a.SiteDp?.TargetNoiseMultiplier ?? 0), ("site δ", a.SiteDp?.Delta ?? 0),
            ("quantization clip", a.QuantClip), ("quantization scale", a.QuantScale),
        ];
        foreach ((string name, double value) in numbers)
        {
            if (!double.IsFinite(value))
            {
                return string.Create(CultureInfo.InvariantCulture, $"the announced {name} is {value}, not a finite number");
            }
        }

        return null;
    }

    /// <summary>Validates an announcement; returns a refusal reason or the parameters to use.</summary>
    private (RoundParameters Parameters, DistributedDpPlan Plan, UpdateCodec Codec, string? Refusal) Check(RoundAnnouncement a)
    {
        static (RoundParameters, DistributedDpPlan, UpdateCodec, string?) No(string reason) => (null!, null!, null!, reason);
        FederationManifest manifest = _kit.Manifest;
        if (MissingPart(a) is string missing)
        {
            // Before: an announcement without its header stopped the agent with a NullReferenceException.
            return No(missing);
        }

        if (a.Header.FederationId != manifest.FederationName)
        {
            return No($"the round is for federation '{a.Header.FederationId}', this site belongs to '{manifest.FederationName}'");
        }

        if (CheckVersion(a, SpeaksProtocolVersion) is string versionRefusal)
        {
            return No(versionRefusal);
        }

        if (a.ProtocolVersion == SliceUploadVersion && SliceHostProblem(a.SliceUploads, _client.Endpoints, _options.ParsedAllowedSliceHosts) is string sliceHost)
        {
            return No(sliceHost);
        }

        if (NonFiniteSetting(a) is string nonFinite)
        {
            return No(nonFinite);
        }

        var participants = new List<Participant>();
        foreach (ParticipantInfo p in a.Participants)
        {
            if (!manifest.TryGetSite(p.Name, out PartyInfo info) || manifest.IsRevoked(p.Name))
            {
                return No($"the cohort includes '{p.Name}', which is not a provisioned, non-revoked site of this federation");
            }

            if (!CryptographicOperations.FixedTimeEquals(info.IdentityPublicKey, p.IdentityPublicKey.Span))
            {
                return No($"the cohort lists an identity key for '{p.Name}' that differs from the federation manifest");
            }

            participants.Add(new Participant((int)p.Index, p.Name, info.IdentityPublicKey));
        }

        if (a.ModelSpecSha256 != _trainer.ModelSpecSha256)
        {
            // Declined round after round while it lasts (the wrong spec may be the aggregator's, fixed by a restart there):
            // the first decline for an announced spec explains both specs and what to do on either side (review of
            // session 45: only two hashes, round after round).
            string shown = ModelSpecMismatch.Shown(a.ModelSpecSha256);
            if (!string.Equals(_explainedSpecMismatch, shown, StringComparison.Ordinal))
            {
                _explainedSpecMismatch = shown;
                Log.ModelSpecMismatch(_logger, _options.Site, ModelSpecMismatch.Explain(a.ModelSpecSha256, _trainer.ModelSpecSha256, _trainer.ModelSpec, _options.ModelSpec));
            }

            return No($"the round's model specification {shown} differs from this site's {_trainer.ModelSpecSha256}");
        }

        _explainedSpecMismatch = null; // a later mismatch, even with the same spec, is explained again

        EvaluationLayout? evaluation = null;
        if (a.Evaluation is not null)
        {
            if (a.Evaluation.CountCap < 1 || a.Evaluation.CountCap > int.MaxValue || a.Evaluation.EntityTypes.Any(string.IsNullOrEmpty))
            {
                return No("the federated-evaluation parameters are out of range");
            }

            evaluation = EvaluationLayout.Create(a.Evaluation.EntityTypes, (int)a.Evaluation.CountCap);
            if (evaluation.CheckFits(a.Participants.Count, (int)Math.Min(a.BitWidth, 32)) is string tooLarge)
            {
                return No("the federated-evaluation count cap is too large: " + tooLarge);
            }
        }

        long expectedLength = (long)a.ParameterCount + 1 + (evaluation?.SlotCount ?? 0);
        if (a.ParameterCount != (uint)_trainer.ParameterCount || a.VectorLength != expectedLength)
        {
            return No($"the round expects {a.ParameterCount} parameters (vector length {a.VectorLength}); this site's model has {_trainer.ParameterCount} (vector length {(long)_trainer.ParameterCount + 1 + (evaluation?.SlotCount ?? 0)})");
        }

        if (a.DpSgd.NoiseMultiplier < _options.MinDpSgdNoiseMultiplier)
        {
            return No($"DP-SGD noise multiplier {a.DpSgd.NoiseMultiplier} is below this site's minimum {_options.MinDpSgdNoiseMultiplier}");
        }

        if (a.SiteDp.TargetNoiseMultiplier < _options.MinSiteNoiseMultiplier)
        {
            return No($"site-level noise multiplier {a.SiteDp.TargetNoiseMultiplier} is below this site's minimum {_options.MinSiteNoiseMultiplier}");
        }

        if (!(a.DpSgd.SampleRate > 0 && a.DpSgd.SampleRate <= 1) || a.DpSgd.LocalEpochs is < 1 or > 1000 || !(a.DpSgd.MaxGradNorm > 0))
        {
            return No("the DP-SGD parameters are out of range");
        }

        if (a.DpSgd.MaxSteps > 1_000_000 || a.DpSgd.NoiseShares > 10_000)
        {
            return No($"the DP-SGD step cap {a.DpSgd.MaxSteps} or noise share count {a.DpSgd.NoiseShares} is out of range");
        }

        if (a.DpSgd.NoiseShares >= 2)
        {
            // Split patient-level noise: this site would add only σ/√k (docs/PROTOCOL.md, "Split patient-level noise").
            if (!_options.AcceptSplitPatientNoise)
            {
                return No($"the round splits the patient-level DP-SGD noise into {a.DpSgd.NoiseShares} shares (each site adds σ/√{a.DpSgd.NoiseShares}); this site has not opted in (SecureFed:AcceptSplitPatientNoise is false)");
            }

            if (_options.Optimizer?.ToLowerInvariant() != "sgd")
            {
                return No($"split patient-level noise ({a.DpSgd.NoiseShares} shares) needs the plain SGD local optimiser (SecureFed:Optimizer = sgd, this site uses {_options.Optimizer}): only then is the sum of the sites' steps one DP-SGD step");
            }

            if (a.DpSgd.MaxSteps != 1)
            {
                return No($"split patient-level noise ({a.DpSgd.NoiseShares} shares) needs exactly 1 DP-SGD step per round, but the round announces max_steps = {a.DpSgd.MaxSteps}");
            }

            if (a.DpSgd.NoiseShares > a.Threshold)
            {
                return No($"the patient-level noise is split into {a.DpSgd.NoiseShares} shares, more than the threshold t = {a.Threshold}: a sum of t sites would carry less than the announced noise multiplier");
            }
        }

        if (CheckLayerScales(a.DpSgd.LayerScales) is string layerRefusal)
        {
            return No(layerRefusal);
        }

        if (!(a.SiteDp.L2Clip > 0) || !(a.QuantScale >= 1) || !(a.QuantClip > 0) || a.BitWidth is < 2 or > 32 || a.WeightCap < 1)
        {
            return No("the quantization or clipping parameters are out of range");
        }

        if (QuantizationFitProblem(a.QuantClip, a.QuantScale, (int)a.BitWidth) is string doesNotFit)
        {
            // Before: the quantizer refused them when the codec was built below, outside any catch, and the agent stopped.
            return No(doesNotFit);
        }

        if (DpSgdFloat32Problem(a.DpSgd.NoiseMultiplier, a.DpSgd.MaxGradNorm) is string tooLarge32)
        {
            // Before: the trainer threw, and the agent withdrew and stopped blaming its own training.
            return No(tooLarge32);
        }

        if (a.StageDeadlineUnixMs < 0 || a.StageDeadlineUnixMs > DateTimeOffset.UtcNow.Add(MaxDeadlineAhead).ToUnixTimeMilliseconds())
        {
            // The agent waits until the deadline: one far ahead overflowed "now + wait" and stopped the agent.
            return No(string.Create(CultureInfo.InvariantCulture, $"the announced stage deadline {a.StageDeadlineUnixMs} ms is not a time within the next {MaxDeadlineAhead.TotalDays:F0} days"));
        }

        if (StageTimeoutProblem(a.StageTimeoutSeconds, _options.MaxStageTimeoutSeconds) is string stageTimeout)
        {
            // The agent waits the announced budget + 30 s at each later stage: a hostile one could hold it for days.
            return No(stageTimeout);
        }

        if (DpSgdSteps.Problem(a.DpSgd.SampleRate, (int)Math.Min(a.DpSgd.LocalEpochs, int.MaxValue), (int)Math.Min(a.DpSgd.MaxSteps, int.MaxValue)) is string steps)
        {
            return No("the DP-SGD plan is implausible: " + steps);
        }

        long lastRound = LedgerLastRound();
        if (a.Header.Round < (ulong)lastRound)
        {
            // The ledger refuses a round that goes back; found only after training and sharing keys, it stopped the agent.
            return No(string.Create(CultureInfo.InvariantCulture, $"round {a.Header.Round} goes back before round {lastRound} of this site's privacy ledger"));
        }

        if (RoundsAheadProblem(a.Header.Round, lastRound) is string farAhead)
        {
            // Once in the ledger, such a round made every later honest round "go back" before it: declined forever.
            return No(farAhead);
        }

        RoundParameters parameters;
        try
        {
            parameters = new RoundParameters(a.Header.FederationId, (long)a.Header.Round, a.Header.SessionId, participants,
                (int)a.Threshold, (int)a.GraphDegree, (int)a.VectorLength, (int)a.BitWidth, evaluation, (int)a.DpSgd.MaxSteps, (int)a.DpSgd.NoiseShares, a.DpSgd.LayerScales,
                (int)Math.Min(a.ConsistencyColluders, int.MaxValue));
        }
        catch (ArgumentException ex)
        {
            return No("the round parameters are invalid: " + ex.Message);
        }

        if (parameters.Find(_options.Site) is null)
        {
            return No("this site is not in the announced cohort");
        }

        if (GraphPlanner.CheckAnnounced(parameters.CohortSize, parameters.GraphDegree, parameters.Threshold, _options.GraphPolicy) is string graphRefusal)
        {
            return No(graphRefusal);
        }

        if (_options.ColludingSites > 0 && ColludingSitesRefusal(parameters, _options.ColludingSites) is string quorumRefusal)
        {
            return No(quorumRefusal);
        }

        // The aggregator cannot ask for less noise than the announced guarantee needs: recompute it here.
        DistributedDpPlan plan;
        try
        {
            plan = DistributedDp.Plan(a.SiteDp.L2Clip, a.QuantScale, (int)a.ParameterCount, parameters.CohortSize, parameters.Threshold, a.SiteDp.TargetNoiseMultiplier);
        }
        catch (ArgumentException ex)
        {
            // A site noise multiplier of 0 (when the site sets no minimum) or a σ below what the analysis needs: declined.
            return No("the aggregator announced site-level DP parameters this site cannot plan: " + ex.Message);
        }

        if (!(a.SiteDp.NoiseSigmaSite >= plan.SigmaSite * 0.999))
        {
            return No($"the announced per-site noise {a.SiteDp.NoiseSigmaSite} is below the {plan.SigmaSite} needed for noise multiplier {a.SiteDp.TargetNoiseMultiplier} with t = {parameters.Threshold}");
        }

        UpdateCodec codec;
        try
        {
            codec = UpdateCodec.FromParameters((int)a.ParameterCount, a.QuantClip, a.QuantScale, (int)a.BitWidth, (int)a.WeightCap, evaluation);
        }
        catch (ArgumentException ex)
        {
            // The checks above mirror the codec's own; should they ever miss one, the round is declined, not the agent stopped.
            return No("the aggregator announced quantization parameters this site cannot use: " + ex.Message);
        }

        return (parameters, plan, codec, null);
    }

    /// <summary>How far beyond the privacy ledger's last round an announced round may be.</summary>
    /// <value>1,000,000 rounds: more than any federation runs, far below the 2^63 a hostile aggregator can announce.</value>
    internal const long MaxRoundsAhead = 1_000_000;

    /// <summary>The last round in this site's privacy ledger, 0 when it is empty.</summary>
    private long LedgerLastRound() => _ledger.Entries.Select(e => e.Round).DefaultIfEmpty(0).Max();

    /// <summary>
    /// Why <paramref name="round"/> is too far beyond <paramref name="lastRound"/> (the ledger's last) to take part in, or
    /// null. A round once in the ledger can never be gone back before, so a hostile aggregator announcing round 2^63 - 1
    /// would have every later honest round declined.
    /// </summary>
    internal static string? RoundsAheadProblem(ulong round, long lastRound)
        => lastRound >= 0 && round > (ulong)lastRound && round - (ulong)lastRound > MaxRoundsAhead
            ? string.Create(CultureInfo.InvariantCulture, $"the aggregator announced round {round}, more than {MaxRoundsAhead:N0} rounds after round {lastRound} of this site's privacy ledger; a round once recorded there cannot be gone back before, so this site does not take part")
            : null;

    /// <summary>
    /// Why the announced stage budget <paramref name="seconds"/> (<c>stage_timeout_seconds</c>) is not one this site waits
    /// for, or null: 0 (no stage can be answered in no time; the aggregator's own minimum is 1 s) or more than
    /// <paramref name="maxSeconds"/> (<see cref="AgentOptions.MaxStageTimeoutSeconds"/>).
    /// </summary>
    internal static string? StageTimeoutProblem(uint seconds, int maxSeconds)
        => seconds == 0
            ? "the aggregator announced a stage timeout of 0 s; each later stage needs at least 1 s"
            : seconds > maxSeconds
                ? string.Create(CultureInfo.InvariantCulture, $"the aggregator announced a stage timeout of {seconds} s, more than this site's maximum of {maxSeconds} s (SecureFed:MaxStageTimeoutSeconds)")
                : null;

    /// <summary>
    /// Why quantization clip × scale does not fit in <paramref name="bitWidth"/>-bit words, or null: the very check
    /// <see cref="FixedPointQuantizer"/> makes (ceil(c · s) at most 2^(b-1) - 1), made here so the round is declined.
    /// </summary>
    internal static string? QuantizationFitProblem(double clip, double scale, int bitWidth)
    {
        double maxAbs = Math.Ceiling(clip * scale);
        long limit = (1L << (bitWidth - 1)) - 1;
        return maxAbs <= limit
            ? null
            : string.Create(CultureInfo.InvariantCulture, $"the aggregator announced quantization clip {clip} × scale {scale} = {maxAbs}, which does not fit in its announced {bitWidth}-bit words (at most {limit})");
    }

    /// <summary>
    /// Why the DP-SGD noise multiplier σ or clip C is beyond the 32-bit floats this site trains in, or null: σ, C and the
    /// noise's standard deviation σ·C must each be at most <see cref="float.MaxValue"/> (the aggregator's own bound for
    /// C, <see cref="Float32Scalar"/>). Before, the trainer threw on such a value and the agent stopped, blaming itself.
    /// </summary>
    internal static string? DpSgdFloat32Problem(double noiseMultiplier, double maxGradNorm)
        => noiseMultiplier > float.MaxValue || maxGradNorm > float.MaxValue || noiseMultiplier * maxGradNorm > float.MaxValue
            ? string.Create(CultureInfo.InvariantCulture, $"the aggregator announced DP-SGD noise multiplier σ = {noiseMultiplier} and clip C = {maxGradNorm}; σ, C and σ·C must each be at most {float.MaxValue:G2}, as this site trains in 32-bit floats")
            : null;

    /// <summary>
    /// The first sub-message the announcement must carry and does not (protobuf leaves an absent one null), named; or
    /// null. <c>evaluation</c> and <c>slice_uploads</c> may be absent (checked with the protocol version).
    /// </summary>
    internal static string? MissingPart(RoundAnnouncement a)
    {
        ArgumentNullException.ThrowIfNull(a);
        return a.Header is null ? "the announcement carries no header (federation, round, session)"
            : a.DpSgd is null ? "the announcement carries no DP-SGD settings (dp_sgd)"
            : a.SiteDp is null ? "the announcement carries no site-level DP settings (site_dp)"
            : null;
    }

    private async Task<float[]> EnsureModelAsync(RoundAnnouncement a, CancellationToken cancellationToken)
    {
        if (_modelVersion >= 0 && a.ModelVersion < (ulong)_modelVersion)
        {
            // Not refused: versions are not checked across rounds by the protocol (an agent restarts without knowing its
            // last one, and the round number, which the privacy ledger does check, cannot go back), but the operator is told.
            Log.ModelVersionWentBack(_logger, _options.Site, (long)a.Header.Round, a.ModelVersion, _modelVersion);
        }

        if (_model is not null && _modelVersion == (long)a.ModelVersion)
        {
            return _model;
        }

        (long version, float[] values, string sha) = await _client.DownloadModelAsync(
            new ModelRequest { Header = Header((long)a.Header.Round, a.Header.SessionId, Stage.Model), Version = a.ModelVersion },
            _trainer.ParameterCount, cancellationToken).ConfigureAwait(false);
        string actual = WireEncoding.ModelDigest(values);
        if (actual != a.ModelSha256 || sha != a.ModelSha256 || version != (long)a.ModelVersion)
        {
            throw new InvalidDataException($"the downloaded model (version {version}, SHA-256 {actual}) is not the announced version {a.ModelVersion} ({a.ModelSha256})");
        }

        if (FirstNonFinite(values) is int bad)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"the downloaded model version {version} has a non-finite value ({values[bad]}) at index {bad}; a site trains only on a finite model"));
        }

        _model = values;
        _modelVersion = version;
        _audit.Append(AuditEvents.ModelReceived, f => f.Add("round", (long)a.Header.Round).Add("version", version).Add("sha256", actual));
        Directory.CreateDirectory(_options.DataDirectory);
        AtomicFile.WriteAllBytes(Path.Combine(_options.DataDirectory, "model.bin"), WireEncoding.ModelBytes(values));
        return values;
    }

    /// <summary>How long a stopped agent waits for the aggregator to take its decline before it stops anyway.</summary>
    /// <value>The default value is 3 seconds, well inside the host's 30 s shutdown limit.</value>
    internal TimeSpan StopDeclineTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Declines round <paramref name="a"/> as <see cref="StoppedOutcome"/> after the operator's stop, on a short budget of
    /// its own (the stop has cancelled the agent's token). When the decline is not delivered (no answer in time, the
    /// aggregator unreachable, the audit line not written) the agent says so in its log and stops anyway; the aggregator
    /// then sees this site as a dropout at the training deadline.
    /// </summary>
    private async Task DeclineOnStopAsync(RoundAnnouncement a)
    {
        using var budget = new CancellationTokenSource(StopDeclineTimeout);
        string? notDelivered;
        try
        {
            notDelivered = await DeclineAsync(a, StoppedOutcome, budget.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The agent is stopping whatever kept the decline from being sent; the reason goes to its log.
            notDelivered = ex.GetType().Name + ": " + AggregatorText.ForLog(ex.Message);
        }

        if (notDelivered is not null)
        {
            Log.StopDeclineNotDelivered(_logger, _options.Site, (long)a.Header.Round, notDelivered);
        }
    }

    /// <summary>Declines round <paramref name="a"/> with <paramref name="reason"/> (logged, audited, sent).</summary>
    /// <returns><see langword="null"/> when the aggregator took the decline; otherwise why it did not (the call's status).</returns>
    private async Task<string?> DeclineAsync(RoundAnnouncement a, string reason, CancellationToken cancellationToken)
    {
        long round = (long)(a.Header?.Round ?? 0);
        // The reason may quote the aggregator's text (a federation id, a name): bounded as the aggregator bounds a site's.
        reason = AuditText.Bound(reason, AuditText.ReasonChars);
        _declined = true;
        Log.Declined(_logger, _options.Site, round, reason);
        _audit.Append(AuditEvents.Refusal, f => f.Add("round", round).Add("reason", reason));
        var request = new DeclineRoundRequest { Header = Header(round, a.Header?.SessionId ?? "", Stage.Announce), Reason = reason };
        Sent(round, "decline", request);
        try
        {
            await _client.DeclineRoundAsync(request, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (RpcException ex)
        {
            // The aggregator will treat silence as a dropout; nothing else to do but say why.
            return ex.StatusCode + ": " + AggregatorText.ForLog(ex.Status.Detail);
        }
    }

    /// <summary>
    /// Sends a signed share complaint (PROTOCOL.md "Blame"; no key) against <paramref name="party"/> when its envelope to
    /// this site is invalid; nothing when the failure was not the envelope's (e.g. the aggregator relayed a stray share).
    /// Returns the bytes sent.
    /// </summary>
    private async Task<long> AccuseAsync(RoundAnnouncement a, ClientRound protocol, EncryptedShare[] envelopes, int party, string reason, CancellationToken cancellationToken)
    {
        long round = (long)a.Header.Round;
        EncryptedShare? envelope = envelopes.FirstOrDefault(e => e.Sender == party && e.Recipient == protocol.Index);
        ShareAccusation? accusation = envelope is null ? null : protocol.Accuse(envelope);
        if (accusation is null)
        {
            return 0;
        }

        string accused = protocol.Parameters[party].Name;
        _audit.Append(AuditEvents.Blame, f => f.Add("round", round).Add("accused", accused).Add("reason", reason).AddDigest("envelope_sha256", SHA256.HashData(envelope!.Ciphertext)));
        var request = new DeclineRoundRequest
        {
            Header = Header(round, a.Header.SessionId, Stage.MaskedInput),
            Reason = reason,
            Accusation = new ShareAccusationMessage
            {
                Accused = (uint)party,
                EncryptionPrivateKey = ByteString.Empty, // a complaint: never the share-encryption key (ShareAccusation)
                Signature = ByteString.CopyFrom(accusation.Signature),
            },
        };
        long bytes = Sent(round, "decline", request);
        try
        {
            await _client.DeclineRoundAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException ex)
        {
            // The round may already have been aborted by another site's accusation; the refusal is reported anyway.
            Log.RoundEnded(_logger, _options.Site, round, "accusation not delivered: " + AggregatorText.ForLog(ex.Status.Detail));
        }

        return bytes;
    }

    private bool Drops(long round, ProtocolStage stage)
    {
        if (Dropout?.Drops(round, stage) == true)
        {
            Log.SimulatedDrop(_logger, _options.Site, stage.ToString(), round);
            return true;
        }

        return false;
    }

    private long Sent(long round, string type, IMessage message)
    {
        byte[] bytes = message.ToByteArray();
        Telemetry?.Sent(type, bytes.Length);
        _audit.Append(AuditEvents.MessageSent, f => f.Add("round", round).Add("message_type", type).Add("bytes", bytes.Length).AddDigest("sha256", SHA256.HashData(bytes)));
        return bytes.Length;
    }

    private void Report(long round, bool completed, string outcome, double loss, double devF1, long bytes, long modelVersion = -1, bool budgetSpent = false)
    {
        double record = _ledger.Spent(Guarantee.Record, _options.Delta).Epsilon;
        double site = _ledger.Spent(Guarantee.Site, _options.Delta).Epsilon;
        double collusion = _ledger.Spent(Guarantee.RecordCollusion, _options.Delta).Epsilon;
        string word = OutcomeWord(outcome);
        Telemetry?.RoundEnded(word);
        if (_roundActivity is { } activity)
        {
            activity.SetTag("securefed.outcome", word);
            if (!completed)
            {
                activity.SetStatus(ActivityStatusCode.Error, word);
            }
        }

        RoundFinished?.Invoke(this, new AgentRoundReport(_options.Site, round, completed, outcome, loss, devF1, record, site, bytes, modelVersion) { UpdateNorm = _lastNorm, CollusionEpsilon = collusion, BudgetSpent = budgetSpent });
        _lastNorm = double.NaN;
    }

    /// <summary>The outcome's first word (completed, declined, aborted, refused, ended, failed, simulated): a low-cardinality tag.</summary>
    private static string OutcomeWord(string outcome)
    {
        int end = outcome.IndexOfAny([' ', ':']);
        return end < 0 ? outcome : outcome[..end];
    }

    private Header Header(long round, string session, Stage stage) => new()
    {
        FederationId = _kit.Manifest.FederationName,
        Round = (ulong)round,
        SessionId = session,
        Stage = stage,
        Sender = _options.Site,
    };

    private StageQuery Query(long round, RoundParameters parameters, Stage stage) => new() { Header = Header(round, parameters.SessionId, stage) };

    /// <summary>
    /// Why this site cannot guard against <paramref name="colluders"/> colluding sites in a round with these parameters
    /// (<see cref="AgentOptions.ColludingSites"/>), or null: t colluders rebuild any site's secrets from their own shares.
    /// </summary>
    internal static string? ColludingSitesRefusal(RoundParameters parameters, int colluders)
    {
        int n = parameters.CohortSize, t = parameters.Threshold;
        if (colluders >= t)
        {
            return $"this site guards against {colluders} colluding sites (SecureFed:ColludingSites), but the round's threshold is t = {t} of {n}: {t} colluders can rebuild any site's secrets from their own shares";
        }

        int ours = parameters.SignatureQuorum(colluders), announced = parameters.SignatureQuorum(parameters.QuorumColluders);
        if (ours > announced)
        {
            // The aggregator moves to unmasking with the announced quorum; this site would then refuse to answer, and a
            // round that needed its shares would abort only after every site trained. Say so before any work. Compared
            // as signatures, not colluders: q is flat in c (an even cohort's t already keeps one colluder out).
            return $"this site guards against {colluders} colluding sites (SecureFed:ColludingSites) and answers the unmasking request only with {ours} of the {n} consistency signatures, "
                + $"but the round's consistency quorum is announced for {parameters.QuorumColluders} ({announced} signatures): ask the aggregator's operator to set SecureFed:ConsistencyColluders to at least {colluders}, or lower this site's SecureFed:ColludingSites";
        }

        return null; // below t the quorum max(t, ⌊(n + c)/2⌋ + 1) is at most n
    }
}
