namespace SecureFed.Audit.Internal;

/// <summary>One round as its aggregator logged it: from round.opened to round.completed or round.aborted.</summary>
internal sealed class RoundFacts
{
    public required LogView Aggregator { get; init; }

    public required long Round { get; init; }

    public required LogEntry Opened { get; init; }

    public required IReadOnlyList<string> Cohort { get; init; }

    public RoundState State { get; set; } = RoundState.Open;

    /// <summary>The round.completed or round.aborted line.</summary>
    public LogEntry? Ended { get; set; }

    public string AbortStage { get; set; } = string.Empty;

    public string AbortReason { get; set; } = string.Empty;

    public List<SiteDropout> Dropouts { get; } = [];

    /// <summary>Sites that declined the round (aggregator refusal "site declined: …"), with the reason.</summary>
    public Dictionary<string, (string Reason, LogRef Source)> Declined { get; } = new(StringComparer.Ordinal);

    public LogEntry? Aggregate { get; set; }

    /// <summary>The evaluation.federated line: the federation's score of the round's starting model, or why none was published.</summary>
    public LogEntry? Evaluation { get; set; }

    public IReadOnlyList<string> Participants { get; set; } = [];

    public List<LogEntry> MaskedInputs { get; } = [];

    /// <summary>The unmask.requested line: its survivors are the sites whose masked inputs are in the sum.</summary>
    public LogEntry? UnmaskRequested { get; set; }

    /// <summary>The survivors <see cref="UnmaskRequested"/> names.</summary>
    public IReadOnlyList<string> Survivors { get; set; } = [];

    /// <summary>The unmask.response lines: each names the sites whose self-mask shares a survivor revealed (b_share_owners).</summary>
    public List<LogEntry> UnmaskResponses { get; } = [];

    public LogRef OpenedAt => LogRef.Of(Aggregator, Opened);

    public LogRef? EndedAt => Ended is null ? null : LogRef.Of(Aggregator, Ended);
}
