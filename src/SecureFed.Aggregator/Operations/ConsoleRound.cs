namespace SecureFed.Aggregator.Operations;

/// <summary>What the console shows of one round attempt (kept in memory by <see cref="AggregatorTelemetry"/>).</summary>
internal sealed class ConsoleRound(long round, DateTimeOffset startedUtc, long baseModelVersion)
{
    public long Round { get; } = round;

    public DateTimeOffset StartedUtc { get; } = startedUtc;

    public long BaseModelVersion { get; } = baseModelVersion;

    public DateTimeOffset? EndedUtc { get; set; }

    public RoundOutcomeKind Outcome { get; set; } = RoundOutcomeKind.Running;

    public string? AbortReason { get; set; }

    public string? AbortStage { get; set; }

    public int Survivors { get; set; }

    public long? ModelVersionAfter { get; set; }

    /// <summary>Protobuf bytes received from sites while this attempt was open.</summary>
    public long BytesReceived { get; set; }

    /// <summary>Federation-level F1 from federated evaluation, when it reported one (<see cref="AggregatorTelemetry.ReportFederationF1"/>).</summary>
    public double? FederationF1 { get; set; }

    /// <summary>Each cohort member's state, by site.</summary>
    public Dictionary<string, ConsoleSite> Sites { get; private init; } = new(StringComparer.Ordinal);

    public List<string> ClosedStages { get; private init; } = [];

    public ConsoleRound Copy() => new(Round, StartedUtc, BaseModelVersion)
    {
        EndedUtc = EndedUtc,
        Outcome = Outcome,
        AbortReason = AbortReason,
        AbortStage = AbortStage,
        Survivors = Survivors,
        ModelVersionAfter = ModelVersionAfter,
        BytesReceived = BytesReceived,
        FederationF1 = FederationF1,
        Sites = new Dictionary<string, ConsoleSite>(Sites, StringComparer.Ordinal),
        ClosedStages = [.. ClosedStages],
    };
}
