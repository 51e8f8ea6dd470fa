using System.Diagnostics;
using System.Diagnostics.Metrics;
using SecureFed.Privacy;

namespace SecureFed.Agent;

/// <summary>
/// The agent's own telemetry: one <see cref="Meter"/> and one <see cref="ActivitySource"/>, both named <see cref="Name"/>.
/// Metrics: local training time and throughput (tokens/s), bytes sent by message type, gRPC retries, rounds by outcome,
/// and the patient-level and site-level ε this site has spent (read from its own privacy ledger). Traces: one per round
/// with a span per stage; the gRPC calls made inside a stage carry its W3C trace context (<c>traceparent</c>) to the
/// aggregator, so the aggregator's server spans join the site's trace. Nothing here is ever sent to the aggregator as
/// telemetry: the numbers stay with the hospital's own exporter (<see cref="AgentOptions.OtlpEndpoint"/>), and the trace
/// context holds only random trace and span identifiers (no baggage).
/// </summary>
public sealed class AgentTelemetry : IDisposable
{
    /// <summary>The meter's and the activity source's name.</summary>
    public const string Name = "SecureFed.Agent";

    /// <summary>The source of the round and stage spans.</summary>
    internal static readonly ActivitySource Source = new(Name, typeof(AgentTelemetry).Assembly.GetName().Version?.ToString());

    private readonly bool _ownsMeter;
    private readonly Histogram<double> _trainingDuration;
    private readonly Histogram<double> _trainingThroughput;
    private readonly Counter<long> _bytesSent;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _rounds;
    private PrivacyLedger? _ledger;
    private double _delta;
    private double _recordBudget;
    private double _siteBudget;
    private double _collusionBudget;

    /// <summary>
    /// Creates the instruments on <paramref name="meterFactory"/>'s meter (so each agent host in a process has its own),
    /// or on a meter of this object's own when it is null.
    /// </summary>
    public AgentTelemetry(IMeterFactory? meterFactory)
    {
        string? version = typeof(AgentTelemetry).Assembly.GetName().Version?.ToString();
        _ownsMeter = meterFactory is null;
        Meter = meterFactory?.Create(Name, version) ?? new Meter(Name, version);
        _trainingDuration = Meter.CreateHistogram<double>("securefed.agent.training.duration", "s", "Local DP-SGD training time per round.");
        _trainingThroughput = Meter.CreateHistogram<double>("securefed.agent.training.throughput", "{token}/s", "Local training throughput per round (tokens per second of forward, backward and optimiser step).");
        _bytesSent = Meter.CreateCounter<long>("securefed.agent.sent", "By", "Protobuf bytes sent to the aggregator, by message type.");
        _retries = Meter.CreateCounter<long>("securefed.agent.retries", "{retry}", "gRPC calls retried after a transient failure, by status.");
        _rounds = Meter.CreateCounter<long>("securefed.agent.rounds", "{round}", "Rounds this site was announced for, by outcome (completed, declined, aborted, ...).");
        Meter.CreateObservableGauge("securefed.agent.privacy.epsilon_spent", ObserveSpent, "1", "ε this site has spent (its own privacy ledger), by guarantee (record = patient level, site = site level, record-collusion = patient level if the aggregator and all other sites collude, only for a site that accepts split patient-level noise).");
        Meter.CreateObservableGauge("securefed.agent.privacy.epsilon_budget", ObserveBudget, "1", "This site's ε budget, by guarantee.");
    }

    /// <summary>The meter the instruments live on.</summary>
    internal Meter Meter { get; }

    /// <summary>Lets the ε gauges read <paramref name="ledger"/> (at δ and against the budgets of <paramref name="options"/>).</summary>
    internal void ObserveLedger(PrivacyLedger ledger, AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        ArgumentNullException.ThrowIfNull(options);
        _delta = options.Delta;
        _recordBudget = options.EpsilonBudget;
        _siteBudget = options.SiteEpsilonBudget;
        _collusionBudget = options.AcceptSplitPatientNoise ? options.MaxCollusionEpsilon : 0;
        Volatile.Write(ref _ledger, ledger);
    }

    internal void Trained(TimeSpan elapsed, double tokensPerSecond)
    {
        _trainingDuration.Record(elapsed.TotalSeconds);
        if (double.IsFinite(tokensPerSecond) && tokensPerSecond > 0)
        {
            _trainingThroughput.Record(tokensPerSecond);
        }
    }

    internal void Sent(string messageType, long bytes) => _bytesSent.Add(bytes, new KeyValuePair<string, object?>("message", messageType));

    internal void Retried(string status) => _retries.Add(1, new KeyValuePair<string, object?>("status", status));

    internal void RoundEnded(string outcome) => _rounds.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    /// <summary>Starts a round's span: the root of a trace of its own.</summary>
    internal static Activity? StartRound(string federation, string site, long round)
    {
        Activity? previous = Activity.Current;
        Activity.Current = null;
        Activity? activity = Source.StartActivity("securefed.agent.round", ActivityKind.Internal);
        if (activity is null)
        {
            Activity.Current = previous;
            return null;
        }

        activity.SetTag("securefed.federation", federation);
        activity.SetTag("securefed.site", site);
        activity.SetTag("securefed.round", round);
        return activity;
    }

    /// <summary>
    /// Ends the open stage span (if any) and starts <paramref name="stage"/>'s as a child of <paramref name="round"/>; it
    /// becomes <see cref="Activity.Current"/>, so the gRPC calls that follow carry its context.
    /// </summary>
    internal static Activity? NextStage(Activity? round, Activity? open, string stage)
    {
        if (open is not null)
        {
            open.Stop();
        }

        if (round is null)
        {
            return null;
        }

        Activity? activity = Source.StartActivity("securefed.agent.stage " + stage, ActivityKind.Internal, round.Context);
        activity?.SetTag("securefed.stage", stage);
        return activity;
    }

    private IEnumerable<Measurement<double>> ObserveSpent()
    {
        PrivacyLedger? ledger = Volatile.Read(ref _ledger);
        if (ledger is null)
        {
            return [];
        }

        return
        [
            new Measurement<double>(ledger.Spent(Guarantee.Record, _delta).Epsilon, new KeyValuePair<string, object?>("guarantee", "record")),
            new Measurement<double>(ledger.Spent(Guarantee.Site, _delta).Epsilon, new KeyValuePair<string, object?>("guarantee", "site")),
            .. _collusionBudget > 0 ? [new Measurement<double>(ledger.Spent(Guarantee.RecordCollusion, _delta).Epsilon, new KeyValuePair<string, object?>("guarantee", "record-collusion"))] : Array.Empty<Measurement<double>>(),
        ];
    }

    private IEnumerable<Measurement<double>> ObserveBudget()
    {
        if (Volatile.Read(ref _ledger) is null)
        {
            return [];
        }

        return
        [
            new Measurement<double>(_recordBudget, new KeyValuePair<string, object?>("guarantee", "record")),
            new Measurement<double>(_siteBudget, new KeyValuePair<string, object?>("guarantee", "site")),
            .. _collusionBudget > 0 ? [new Measurement<double>(_collusionBudget, new KeyValuePair<string, object?>("guarantee", "record-collusion"))] : Array.Empty<Measurement<double>>(),
        ];
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // A factory's meter is disposed with the factory (the host); only a meter of our own is disposed here.
        if (_ownsMeter)
        {
            Meter.Dispose();
        }
    }
}
