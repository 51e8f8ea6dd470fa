using System.Diagnostics;
using System.Diagnostics.Metrics;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace SecureFed.Aggregator.Operations;

/// <summary>
/// The aggregator's operator telemetry: one <see cref="Meter"/> and one <see cref="ActivitySource"/> (both named
/// <see cref="Name"/>) and the in-memory record of recent rounds the operator console shows. The coordinator and the
/// gRPC service report protocol events here; nothing here ever sees a site's update, norm, loss or score: the only
/// per-site facts are whether and when it delivered, dropped or declined (threat-model/README.md, "Operator telemetry").
/// </summary>
public sealed class AggregatorTelemetry : IDisposable
{
    /// <summary>The meter's and the activity source's name.</summary>
    public const string Name = "SecureFed.Aggregator";

    /// <summary>Rounds kept in memory for the console (older ones come from the store, without byte counts).</summary>
    public const int RecentRounds = 200;

    /// <summary>
    /// The store's ledger kind of a finished round's console record (<see cref="ConsoleRound.ToJson"/>): the console's
    /// history, with its participation facts, bytes, model version and federation F1, survives a restart.
    /// </summary>
    internal const string ConsoleRoundKind = "console.round";

    /// <summary>The source of the round and stage spans.</summary>
    internal static readonly ActivitySource Source = new(Name, typeof(AggregatorTelemetry).Assembly.GetName().Version?.ToString());

    private readonly Meter _meter;
    private readonly TimeProvider _time;
    private readonly AggregatorState _state;
    private readonly Counter<long> _roundsStarted;
    private readonly Counter<long> _roundsCompleted;
    private readonly Counter<long> _roundsAborted;
    private readonly Histogram<double> _stageDuration;
    private readonly Counter<long> _sitesDelivered;
    private readonly Counter<long> _dropouts;
    private readonly Counter<long> _declines;
    private readonly Counter<long> _bytesReceived;
    private readonly Counter<long> _refused;
    private readonly Lock _gate = new();
    private readonly LinkedList<ConsoleRound> _rounds = new();
    private readonly string _federation;
    private Activity? _roundSpan;
    private Activity? _stageSpan;
    private long _stageStartedTicks;
    private long _lastRound;
    private long _forwardedRequestBytes;

    /// <summary>Creates the instruments (on <paramref name="meterFactory"/>'s meter, so each host has its own).</summary>
    public AggregatorTelemetry(IMeterFactory meterFactory, AggregatorState state, IOptions<AggregatorOptions> options, TimeProvider time)
        : this(meterFactory, state, options, time, uploads: null)
    {
    }

    internal AggregatorTelemetry(IMeterFactory meterFactory, AggregatorState state, IOptions<AggregatorOptions> options, TimeProvider time, UploadLimiter? uploads)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(options);
        AggregatorOptions o = options.Value;
        _time = time;
        _state = state;
        _federation = o.Federation;
        Load(state);
        _meter = meterFactory.Create(Name, typeof(AggregatorTelemetry).Assembly.GetName().Version?.ToString());
        _roundsStarted = _meter.CreateCounter<long>("securefed.aggregator.rounds.started", "{round}", "Round attempts opened.");
        _roundsCompleted = _meter.CreateCounter<long>("securefed.aggregator.rounds.completed", "{round}", "Rounds that produced a model version.");
        _roundsAborted = _meter.CreateCounter<long>("securefed.aggregator.rounds.aborted", "{round}", "Round attempts aborted, by stage and reason.");
        _stageDuration = _meter.CreateHistogram<double>("securefed.aggregator.stage.duration", "s", "Time from a stage's opening to its closing.");
        _sitesDelivered = _meter.CreateCounter<long>("securefed.aggregator.stage.sites_delivered", "{site}", "Sites that delivered a stage's message before it closed.");
        _dropouts = _meter.CreateCounter<long>("securefed.aggregator.dropouts", "{site}", "Sites expected at a stage that did not deliver before it closed.");
        _declines = _meter.CreateCounter<long>("securefed.aggregator.declines", "{site}", "Sites that declined a round they were announced for.");
        _bytesReceived = _meter.CreateCounter<long>("securefed.aggregator.received", "By", "Protobuf bytes received from sites, by gRPC method.");
        _refused = _meter.CreateCounter<long>("securefed.aggregator.refused", "{message}", "Messages refused, by gRPC status and reason.");
        _meter.CreateObservableGauge("securefed.aggregator.model.version", () => state.Model.Version, "{version}", "The current global model version.");
        _meter.CreateObservableGauge("securefed.aggregator.privacy.epsilon_spent", () => state.Budget.Spent(o.Delta), "1", "Federation-level site-guarantee ε spent (at the federation's δ).");
        _meter.CreateObservableGauge("securefed.aggregator.privacy.epsilon_budget", () => o.EpsilonBudget, "1", "Federation-level site-guarantee ε budget.");
        _meter.CreateObservableGauge("securefed.aggregator.round.current", () => Interlocked.Read(ref _lastRound), "{round}", "The number of the open (or last) round.");
        if (uploads is not null)
        {
            _meter.CreateObservableGauge("securefed.aggregator.uploads.in_use", () => uploads.InUse, "{upload}", "Masked-input uploads buffered in memory now.");
            _meter.CreateObservableGauge("securefed.aggregator.uploads.limit", () => uploads.Limit, "{upload}", "Masked-input uploads that may be buffered at once.");
        }
    }

    /// <summary>Recent rounds, newest first (copies).</summary>
    internal IReadOnlyList<ConsoleRound> Rounds()
    {
        lock (_gate)
        {
            return [.. _rounds.Select(r => r.Copy())];
        }
    }

    /// <summary>The federation's F1 of <paramref name="round"/> from federated evaluation, if it reported one.</summary>
    public double? FederationF1(long round)
    {
        lock (_gate)
        {
            return _rounds.FirstOrDefault(r => r.Round == round)?.FederationF1;
        }
    }

    /// <summary>
    /// The hook for federated evaluation (issue 14 §4): records the federation-level F1 of a round so the console shows
    /// it in the round history. Only a federation-level figure belongs here, never a site's own score.
    /// </summary>
    public void ReportFederationF1(long round, double f1)
    {
        if (!(f1 is >= 0 and <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(f1), f1, "An F1 score lies in [0, 1].");
        }

        lock (_gate)
        {
            ConsoleRound? record = _rounds.FirstOrDefault(r => r.Round == round);
            if (record is not null)
            {
                record.FederationF1 = f1;
            }
        }
    }

    internal void RoundOpened(long round, IReadOnlyList<string> cohort, int threshold, long modelVersion)
    {
        DateTimeOffset now = _time.GetUtcNow();
        _roundsStarted.Add(1);
        Interlocked.Exchange(ref _lastRound, round);
        Activity? previous = Activity.Current;
        Activity.Current = null; // every round is a trace of its own
        _roundSpan = Source.StartActivity("securefed.round", ActivityKind.Internal);
        _roundSpan?.SetTag("securefed.federation", _federation);
        _roundSpan?.SetTag("securefed.round", round);
        _roundSpan?.SetTag("securefed.cohort_size", cohort.Count);
        _roundSpan?.SetTag("securefed.threshold", threshold);
        _roundSpan?.SetTag("securefed.model_version", modelVersion);
        Activity.Current = previous;
        Interlocked.Exchange(ref _stageStartedTicks, now.UtcTicks);
        lock (_gate)
        {
            var record = new ConsoleRound(round, now, modelVersion);
            foreach (string site in cohort)
            {
                record.Sites[site] = new ConsoleSite(SiteState.Waiting, null, null);
            }

            _rounds.AddFirst(record);
            while (_rounds.Count > RecentRounds)
            {
                _rounds.RemoveLast();
            }
        }

        StartStageSpan(RoundCoordinator.StageName(Protocol.ProtocolStage.AdvertiseKeys));
    }

    internal void StageClosed(long round, string stage, IReadOnlyList<string> delivered, IReadOnlyList<string> dropped)
    {
        DateTimeOffset now = _time.GetUtcNow();
        double seconds = TimeSpan.FromTicks(now.UtcTicks - Interlocked.Exchange(ref _stageStartedTicks, now.UtcTicks)).TotalSeconds;
        var tag = new KeyValuePair<string, object?>("stage", stage);
        _stageDuration.Record(seconds, tag);
        _sitesDelivered.Add(delivered.Count, tag);
        if (dropped.Count > 0)
        {
            _dropouts.Add(dropped.Count, tag);
        }

        _stageSpan?.SetTag("securefed.delivered", delivered.Count);
        _stageSpan?.SetTag("securefed.dropped", dropped.Count);
        _stageSpan?.Stop();
        _stageSpan = null;
        lock (_gate)
        {
            ConsoleRound? record = Find(round);
            if (record is not null)
            {
                foreach (string site in dropped)
                {
                    if (record.Sites.TryGetValue(site, out ConsoleSite? s) && s.State != SiteState.Declined)
                    {
                        record.Sites[site] = new ConsoleSite(SiteState.Dropped, stage, null);
                    }
                }

                record.ClosedStages.Add(stage);
            }
        }

        string? next = NextStage(stage);
        if (next is not null)
        {
            StartStageSpan(next);
        }
    }

    internal void Declined(long round, string site, string reason)
    {
        _declines.Add(1);
        lock (_gate)
        {
            if (Find(round) is { } record)
            {
                record.Sites[site] = new ConsoleSite(SiteState.Declined, null, reason);
            }
        }
    }

    internal void Received(string method, long bytes)
    {
        _bytesReceived.Add(bytes, new KeyValuePair<string, object?>("method", method));
        long round = Interlocked.Read(ref _lastRound);
        lock (_gate)
        {
            ConsoleRound? record = _rounds.First?.Value;
            if (record is not null && record.Round == round && record.Outcome == RoundOutcomeKind.Running)
            {
                record.BytesReceived += bytes;
            }
        }
    }

    /// <summary>
    /// The gRPC message bytes (protobuf size plus the 5-byte prefix, as the forwarding silo counts them) of the requests
    /// that carried <see cref="ForwardedIdentity.SiloHeader"/>: the agents' calls other silos of the aggregator cluster
    /// forwarded here, since the service started (also in <c>securefed.aggregator.received</c>, in protobuf bytes).
    /// </summary>
    public long ForwardedRequestBytes => Interlocked.Read(ref _forwardedRequestBytes);

    internal void ReceivedForwarded(long bytes) => Interlocked.Add(ref _forwardedRequestBytes, bytes);

    internal void Refused(StatusCode status, string reason)
        => _refused.Add(1, new KeyValuePair<string, object?>("status", status.ToString()), new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Whether the console holds a record of <paramref name="round"/> (kept in memory or loaded from the store).</summary>
    internal bool HasRound(long round)
    {
        lock (_gate)
        {
            return Find(round) is not null;
        }
    }

    /// <summary>
    /// Adds and keeps the console record of a completed round the aggregator stopped before recording here (it is kept when
    /// the round ends, after the completion was committed; <see cref="RoundCoordinator"/>'s start-up recovery calls this),
    /// from the store's facts: when it started and ended, who contributed, the version it produced and the one it started
    /// from, and the federation F1 its evaluation published (null when none was). The bytes it received are not known
    /// (<see cref="ConsoleRound.Recovered"/>). Nothing when the console already holds the round.
    /// </summary>
    internal void RoundRecovered(long round, DateTimeOffset startedUtc, DateTimeOffset? endedUtc, long baseModelVersion, IReadOnlyList<string> contributors, long? modelVersion, double? f1)
        => AddRecovered(new ConsoleRound(round, startedUtc, baseModelVersion)
        {
            Outcome = RoundOutcomeKind.Completed,
            EndedUtc = endedUtc,
            Survivors = contributors.Count,
            ModelVersionAfter = modelVersion,
            FederationF1 = f1 is >= 0 and <= 1 ? f1 : null,
            Recovered = true,
        }, contributors, SiteState.Contributed);

    /// <summary>
    /// A round a restart found open and aborted (<see cref="Persistence.AggregatorStore.AbortInterruptedRounds"/>): its
    /// console record, which the live process never ended, so that "Now" and the history both say it was aborted.
    /// </summary>
    internal void RoundInterrupted(long round, DateTimeOffset startedUtc, long baseModelVersion, IReadOnlyList<string> cohort, string reason)
        => AddRecovered(new ConsoleRound(round, startedUtc, baseModelVersion)
        {
            Outcome = RoundOutcomeKind.Aborted,
            EndedUtc = _time.GetUtcNow(),
            AbortStage = "unknown",
            AbortReason = reason,
            Recovered = true,
        }, cohort, SiteState.Waiting);

    /// <summary>
    /// Adds a record rebuilt from the store at a restart as the newest round (the records loaded from the store are of
    /// earlier ones), each of <paramref name="sites"/> in <paramref name="state"/>, and persists it; nothing when the
    /// console already has that round.
    /// </summary>
    private void AddRecovered(ConsoleRound record, IReadOnlyList<string> sites, SiteState state)
    {
        lock (_gate)
        {
            if (Find(record.Round) is not null)
            {
                return;
            }

            foreach (string site in sites)
            {
                record.Sites[site] = new ConsoleSite(state, null, null);
            }

            _rounds.AddFirst(record);
            while (_rounds.Count > RecentRounds)
            {
                _rounds.RemoveLast();
            }

            Interlocked.Exchange(ref _lastRound, Math.Max(Interlocked.Read(ref _lastRound), record.Round));
            Persist(record);
        }
    }

    internal void RoundCompleted(long round, IReadOnlyList<string> contributors, long modelVersion) => End(round, RoundOutcomeKind.Completed, null, null, contributors, modelVersion);

    internal void RoundAborted(long round, string stage, string reason) => End(round, RoundOutcomeKind.Aborted, stage, reason, [], null);

    private void End(long round, RoundOutcomeKind outcome, string? stage, string? reason, IReadOnlyList<string> contributors, long? modelVersion)
    {
        DateTimeOffset now = _time.GetUtcNow();
        if (outcome == RoundOutcomeKind.Completed)
        {
            _roundsCompleted.Add(1);
        }
        else
        {
            _roundsAborted.Add(1, new KeyValuePair<string, object?>("stage", stage), new KeyValuePair<string, object?>("reason", AbortReasons.Classify(reason ?? string.Empty)));
        }

        if (_stageSpan is not null)
        {
            _stageSpan.SetStatus(ActivityStatusCode.Error, "round aborted");
            _stageSpan.Stop();
            _stageSpan = null;
        }

        if (_roundSpan is not null)
        {
            _roundSpan.SetTag("securefed.outcome", outcome == RoundOutcomeKind.Completed ? "completed" : "aborted");
            _roundSpan.SetTag("securefed.survivors", contributors.Count);
            if (outcome == RoundOutcomeKind.Aborted)
            {
                _roundSpan.SetTag("securefed.abort_reason", AbortReasons.Classify(reason ?? string.Empty));
                _roundSpan.SetStatus(ActivityStatusCode.Error, "round aborted");
            }

            _roundSpan.Stop();
            _roundSpan = null;
        }

        lock (_gate)
        {
            if (Find(round) is { } record)
            {
                record.Outcome = outcome;
                record.EndedUtc = now;
                record.AbortReason = reason;
                record.AbortStage = stage;
                record.Survivors = contributors.Count;
                record.ModelVersionAfter = modelVersion;
                foreach (string site in contributors)
                {
                    record.Sites[site] = new ConsoleSite(SiteState.Contributed, null, null);
                }

                Persist(record);
            }
        }
    }

    /// <summary>Keeps a finished round's console record in the store; a store that fails only costs the console that row's details.</summary>
    private void Persist(ConsoleRound record)
    {
        try
        {
            _state.Store.AppendLedger(record.Round, ConsoleRoundKind, record.ToJson());
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or InvalidDataException or ObjectDisposedException)
        {
            // The round itself is already recorded (or its failure reported) by the coordinator.
        }
    }

    /// <summary>Reads the console records of the newest finished rounds from the store (newest first in memory).</summary>
    private void Load(AggregatorState state)
    {
        IReadOnlyList<Persistence.LedgerEntry> entries = state.Store.ListLedger(ConsoleRoundKind);
        foreach (Persistence.LedgerEntry entry in entries.Skip(Math.Max(0, entries.Count - RecentRounds)))
        {
            ConsoleRound record;
            try
            {
                record = ConsoleRound.FromJson(entry.PayloadJson);
            }
            catch (InvalidDataException)
            {
                continue; // the history table still lists the round from the rounds table, without these details
            }

            _rounds.AddFirst(record);
            Interlocked.Exchange(ref _lastRound, record.Round);
        }
    }

    private void StartStageSpan(string stage)
    {
        if (_roundSpan is null)
        {
            return;
        }

        Activity? previous = Activity.Current;
        _stageSpan = Source.StartActivity("securefed.stage " + stage, ActivityKind.Internal, _roundSpan.Context);
        _stageSpan?.SetTag("securefed.stage", stage);
        Activity.Current = previous;
    }

    private ConsoleRound? Find(long round) => _rounds.FirstOrDefault(r => r.Round == round);

    private static string? NextStage(string stage) => stage switch
    {
        "advertise_keys" => "share_keys",
        "share_keys" => "masked_input",
        "masked_input" => "consistency",
        "consistency" => "unmasking",
        _ => null,
    };

    /// <inheritdoc />
    public void Dispose()
    {
        // The meter belongs to the host's IMeterFactory, which disposes it with the host.
        _stageSpan?.Stop();
        _roundSpan?.Stop();
    }
}
