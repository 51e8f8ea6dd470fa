using SecureFed.Privacy;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Aggregator;

/// <summary>
/// One attempt of one round on the aggregator: the protocol state machine (<see cref="IRoundServer"/>) plus the signals that release the agents'
/// long-polls when a stage closes. Created by <see cref="RoundCoordinator"/>; read by the gRPC service.
/// </summary>
internal sealed class RoundSession
{
    private readonly TaskCompletionSource[] _closed = [.. Enumerable.Range(0, 5).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously))];

    // Per stage: completed when the stage closes or the round ends, whichever comes first (after _closed or _outcome), so a
    // stage's long-poll registers on one task only, and a cancelled one takes its registration back (see WaitStageClosedAsync).
    private readonly TaskCompletionSource[] _released = [.. Enumerable.Range(0, 5).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously))];
    private readonly TaskCompletionSource<RoundOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _activity = new(0);
    private readonly HashSet<string> _declined = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTimeOffset> _progress = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AccusationClaim> _accusations = new(StringComparer.Ordinal);
    private readonly HashSet<string> _envelopeComplaints = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Site, string Stage), string> _digests = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, SemaphoreSlim> _gates = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _scored = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> _weights = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _inputClosed = new();
    private readonly CancellationTokenSource _ended = new();
    private volatile string? _abortRequested;
    private RoundAnnouncement? _sliced;

    public RoundSession(RoundParameters parameters, IRoundServer server, RoundAnnouncement announcement, UpdateCodec codec, DistributedDpPlan dpPlan, long baseModelVersion, string baseModelSha256)
    {
        Parameters = parameters;
        Server = server;
        Announcement = announcement;
        Codec = codec;
        DpPlan = dpPlan;
        BaseModelVersion = baseModelVersion;
        BaseModelSha256 = baseModelSha256;
    }

    public RoundParameters Parameters { get; }

    /// <summary>The round's server side: in this process (<see cref="LocalRoundServer"/>) or on the aggregator cluster.</summary>
    public IRoundServer Server { get; }

    public RoundAnnouncement Announcement { get; }

    /// <summary>
    /// The announcement for an agent that speaks <paramref name="speaksVersion"/> (docs/PROTOCOL.md "Version 4"): version 4
    /// with the slice layout and endpoints when the agent speaks it and the server takes slices; otherwise
    /// <see cref="Announcement"/> (version 3, the masked input whole).
    /// </summary>
    public RoundAnnouncement AnnouncementFor(uint speaksVersion)
    {
        SliceUploadLayout? layout = Server.SliceUploads;
        if (speaksVersion < SliceUploadVersion || layout is null)
        {
            return Announcement;
        }

        return _sliced ??= Sliced(Announcement, layout);

        static RoundAnnouncement Sliced(RoundAnnouncement announcement, SliceUploadLayout layout)
        {
            RoundAnnouncement sliced = announcement.Clone();
            sliced.ProtocolVersion = SliceUploadVersion;
            sliced.SliceUploads = new SliceUploads { SliceSize = (uint)layout.SliceSize };
            sliced.SliceUploads.Endpoints.AddRange(layout.Endpoints);
            return sliced;
        }
    }

    /// <summary>The protocol version whose masked input is uploaded by slice (docs/PROTOCOL.md "Version 4").</summary>
    public const uint SliceUploadVersion = 4;

    public UpdateCodec Codec { get; }

    public DistributedDpPlan DpPlan { get; }

    public long BaseModelVersion { get; }

    /// <summary>The SHA-256 of the round's starting model (version <see cref="BaseModelVersion"/>, in the round store).</summary>
    public string BaseModelSha256 { get; }

    public long Round => Parameters.Round;

    public string SessionId => Parameters.SessionId;

    /// <summary>Current stage deadline (UTC), for status displays.</summary>
    public DateTimeOffset StageDeadline { get; set; }

    /// <summary>When the attempt opened (its announcement's time): the straggler wait counts from it (<see cref="AggregatorOptions.StragglerWaitFactor"/>).</summary>
    public DateTimeOffset OpenedAt { get; init; }

    /// <summary>When the keys stage first held the advertisements that start the straggler wait (t, or more after shrunk attempts that aborted); null before.</summary>
    public DateTimeOffset? QuorumAt { get; set; }

    /// <summary>
    /// How many advertisements beyond t start this attempt's straggler wait, and how many answers beyond t a later stage
    /// needs before it leaves its last member out: the number of attempts in a row before it that the wait closed with
    /// members left out, or that left a later stage's last member out, and that then aborted (0 normally).
    /// </summary>
    public int StragglerQuorumExtra { get; init; }

    /// <summary>When the current stage after the keys opened (<see cref="AggregatorOptions.StageStragglerMinWaitSeconds"/>).</summary>
    public DateTimeOffset StageOpenedAt { get; set; }

    /// <summary>When every expected member of the current stage after the keys but one had answered (and at least t of the members that did not decline); null before.</summary>
    public DateTimeOffset? StageQuorumAt { get; set; }

    /// <summary>
    /// Whether the current stage waits for its last member until its deadline instead of leaving it out: at Unmasking,
    /// when the answers in hand would not rebuild every secret (<see cref="IRoundServer.UnmaskingShortfallAsync"/>).
    /// </summary>
    public bool LastMemberAwaited { get; set; }

    /// <summary>Whether the straggler wait closed this attempt's keys stage with members left out, or a later stage left its last member out.</summary>
    public bool StragglersLeftOut { get; set; }

    public IReadOnlyList<int>? Survivors { get; set; }

    public UnmaskRequest? UnmaskRequest { get; set; }

    public bool IsFinished => _outcome.Task.IsCompleted;

    /// <summary>Whether <paramref name="stage"/> was closed (<see cref="CloseStage"/>): the sites waiting for it were released.</summary>
    public bool IsStageClosed(ProtocolStage stage) => _closed[(int)stage].Task.IsCompleted;

    public int IndexOf(string site) => Parameters.Find(site)?.Index ?? 0;

    /// <summary>
    /// Records that <paramref name="site"/> declined this attempt and wakes the coordinator, the first time only.
    /// </summary>
    /// <returns>True when this is the site's first decline in the attempt; false for a repeat (nothing changes, no signal).</returns>
    public bool Decline(string site)
    {
        bool first;
        lock (_declined)
        {
            first = _declined.Add(site);
        }

        if (first)
        {
            Signal();
        }

        return first;
    }

    /// <summary>
    /// Claims <paramref name="site"/>'s one accusation of this attempt for <paramref name="claim"/> before it is judged
    /// (docs/PROTOCOL.md "Blame"): null when the claim is taken (then <see cref="EndAccusation"/> must follow), otherwise
    /// the site's accusation already judged or being judged.
    /// </summary>
    public AccusationClaim? TryBeginAccusation(string site, AccusationClaim claim)
    {
        lock (_accusations)
        {
            if (_accusations.TryGetValue(site, out AccusationClaim? held))
            {
                return held;
            }

            _accusations.Add(site, claim);
            return null;
        }
    }

    /// <summary>
    /// Ends the claim taken by <see cref="TryBeginAccusation"/>: <paramref name="judged"/> keeps it as the site's
    /// accusation of this attempt; otherwise (refused as unverifiable, or judging failed) it is freed for another try.
    /// Either way an identical retry waiting on it learns the outcome.
    /// </summary>
    public void EndAccusation(string site, AccusationClaim claim, bool judged)
    {
        lock (_accusations)
        {
            if (!judged && _accusations.TryGetValue(site, out AccusationClaim? held) && ReferenceEquals(held, claim))
            {
                _accusations.Remove(site);
            }
        }

        claim.End(judged);
    }

    /// <summary>
    /// Records that <paramref name="site"/> reported, at <paramref name="at"/>, that it is still training (docs/PROTOCOL.md
    /// "Training progress"). Returns whether it is the site's first report of the attempt.
    /// </summary>
    public bool RecordProgress(string site, DateTimeOffset at)
    {
        if (_progress.TryAdd(site, at))
        {
            return true;
        }

        _progress[site] = at;
        return false;
    }

    /// <summary>
    /// The sites that reported training progress in this attempt and have been silent for at least
    /// <paramref name="silence"/> at <paramref name="now"/>: taken as gone while the keys stage is open.
    /// </summary>
    public IReadOnlyList<string> SilentSince(DateTimeOffset now, TimeSpan silence)
        => [.. _progress.Where(p => now - p.Value >= silence).Select(p => p.Key).Order(StringComparer.Ordinal)];

    public IReadOnlyCollection<string> Declined
    {
        get
        {
            lock (_declined)
            {
                return [.. _declined];
            }
        }
    }

    /// <summary>
    /// Serializes <paramref name="site"/>'s submission's acceptance with the recording of its digest, so a concurrent
    /// retry sees either nothing or both (see <see cref="RecordDigest"/>). One per site: different sites' submissions
    /// do not wait for each other (the round server serializes its own state). A semaphore, not a lock: acceptance may
    /// await the cluster.
    /// </summary>
    public SemaphoreSlim SubmissionGate(string site) => _gates.GetOrAdd(site, _ => new SemaphoreSlim(1, 1));

    /// <summary>Set by <see cref="RequestAbort"/>: the coordinator aborts the attempt at its next check.</summary>
    public string? AbortRequested => _abortRequested;

    /// <summary>Sites a search by elimination held out of this attempt's cohort (docs/PROTOCOL.md "Blame: by elimination").</summary>
    public IReadOnlyList<string> HeldOut { get; init; } = [];

    /// <summary>The sites whose inputs were in a decoded sum outside its bound (the round then aborts), or null.</summary>
    public string[]? OutOfBoundContributors { get; set; }

    /// <summary>Whether this attempt's complaints were already a step of the search of unopened envelopes (taken once per attempt).</summary>
    public bool EnvelopeSearchStepped { get; set; }

    /// <summary>
    /// Records a verified complaint of <paramref name="accuser"/> against <paramref name="accused"/> (PROTOCOL.md "Blame"):
    /// both become sites involved in this attempt's failure for the search by elimination of unopened envelopes.
    /// </summary>
    public void AddEnvelopeComplaint(string accuser, string accused)
    {
        lock (_envelopeComplaints)
        {
            _envelopeComplaints.Add(accuser);
            _envelopeComplaints.Add(accused);
        }
    }

    /// <summary>The sites named by this attempt's verified complaints so far (accusers and accused), in name order; empty when none.</summary>
    public string[] EnvelopeComplaintSites()
    {
        lock (_envelopeComplaints)
        {
            return [.. _envelopeComplaints.Order(StringComparer.Ordinal)];
        }
    }

    /// <summary>Asks the coordinator to abort this attempt (a verified accusation or complaint); the first reason wins.</summary>
    public void RequestAbort(string reason)
    {
        Interlocked.CompareExchange(ref _abortRequested, reason, null);
        Signal();
    }

    /// <summary>Records the digest of <paramref name="site"/>'s accepted submission for <paramref name="stage"/> (call under the site's <see cref="SubmissionGate"/>).</summary>
    public void RecordDigest(string site, string stage, string digest) => _digests[(site, stage)] = digest;

    /// <summary>The digest recorded for an accepted submission, or null (call under the site's <see cref="SubmissionGate"/>).</summary>
    public string? RecordedDigest(string site, string stage) => _digests.GetValueOrDefault((site, stage));

    /// <summary>
    /// Records <paramref name="site"/>'s declaration of whether it scored the model (ConsistencyRequest.scored); the first
    /// one stands, so a later different one changes nothing.
    /// </summary>
    public void DeclareScored(string site, bool scored) => _scored.TryAdd(site, scored);

    /// <summary>What <paramref name="site"/> declared about its evaluation flag, or null when it declared nothing.</summary>
    public bool? ScoredDeclaration(string site) => _scored.TryGetValue(site, out bool scored) ? scored : null;

    /// <summary>
    /// Records the weight <paramref name="site"/> declared with its accepted key advertisement (AdvertiseKeysRequest.weight,
    /// checked to lie in [1, weight cap] by the caller); the first one stands.
    /// </summary>
    public void DeclareWeight(string site, long weight) => _weights.TryAdd(site, weight);

    /// <summary>The weight <paramref name="site"/> declared, or null when it declared none.</summary>
    public long? WeightDeclaration(string site) => _weights.TryGetValue(site, out long weight) ? weight : null;

    /// <summary>
    /// Wakes the coordinator: something arrived, the stage may be complete. At most one wake-up is pending, so a burst of
    /// signals costs the coordinator's stage loop (<see cref="WaitForActivityAsync"/>) one more status check, not one each.
    /// </summary>
    public void Signal()
    {
        // No wake-up is lost. The loop checks the status, then waits; a signal follows the change it reports. If no permit
        // is pending, the signal releases one, and the loop's next (or current) wait returns and checks again. If one is
        // pending, no wait has taken it yet, so the wait that takes it returns after the change, and the check that follows
        // sees it. The lock only keeps two signals from both finding no permit and leaving two.
        lock (_activity)
        {
            if (_activity.CurrentCount == 0)
            {
                _activity.Release();
            }
        }
    }

    public Task<bool> WaitForActivityAsync(TimeSpan timeout, CancellationToken cancellationToken) => _activity.WaitAsync(timeout, cancellationToken);

    public void CloseStage(ProtocolStage stage)
    {
        _closed[(int)stage].TrySetResult();
        _released[(int)stage].TrySetResult();
        if (stage == ProtocolStage.MaskedInputCollection)
        {
            _ = _inputClosed.CancelAsync(); // the uploads' reads end on the thread pool, not on the coordinator's
        }
    }

    /// <summary>
    /// Cancelled when an upload begun now must stop reading: when the masked-input stage closes, or, for an upload begun after
    /// it closed (an identical retry), when the round ends. Either way no later than the end of the round, so a stalled
    /// stream never holds an upload slot past it (<see cref="UploadLimiter"/>).
    /// </summary>
    public CancellationToken UploadCancellation => _inputClosed.IsCancellationRequested ? _ended.Token : _inputClosed.Token;

    /// <summary>
    /// Waits until <paramref name="stage"/> has closed; throws when the round ended first. A cancelled wait leaves nothing
    /// registered behind it (a site may long-poll with a tiny deadline in a loop): it waits on one task that the stage's close
    /// or the round's end completes, and <see cref="Task.WaitAsync(CancellationToken)"/> removes its continuation when
    /// cancelled, where <c>Task.WhenAny(closed, outcome)</c> stayed registered on both until they completed.
    /// </summary>
    public async Task WaitStageClosedAsync(ProtocolStage stage, CancellationToken cancellationToken)
    {
        await _released[(int)stage].Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        if (!_closed[(int)stage].Task.IsCompleted)
        {
            // Released without closing: the round ended (Finish completes the outcome before it releases the waits).
            RoundOutcome outcome = await _outcome.Task.ConfigureAwait(false);
            throw new RoundAbortedException(stage, outcome.Completed ? "the round already completed" : outcome.AbortReason);
        }
    }

    public Task<RoundOutcome> OutcomeAsync(CancellationToken cancellationToken) => _outcome.Task.WaitAsync(cancellationToken);

    public void Finish(RoundOutcome outcome)
    {
        _outcome.TrySetResult(outcome);
        foreach (TaskCompletionSource released in _released)
        {
            released.TrySetResult();
        }

        _ = _inputClosed.CancelAsync();
        _ = _ended.CancelAsync();
    }
}
