namespace SecureFed.Aggregator.Persistence;

/// <summary>A persisted round.</summary>
/// <param name="Round">The round number (1, 2, ...).</param>
/// <param name="Status">Running, completed or aborted.</param>
/// <param name="ConfigurationJson">The round configuration as given to <see cref="AggregatorStore.BeginRound"/>.</param>
/// <param name="StartedUtc">When the round began.</param>
/// <param name="EndedUtc">When it completed or was aborted; null while running.</param>
/// <param name="ModelSha256">SHA-256 (lowercase hex) of the fused model, for completed rounds.</param>
/// <param name="AbortReason">Why the round was aborted, for aborted rounds.</param>
/// <param name="Participants">The sites whose updates are in the fused model (completed rounds), sorted.</param>
/// <param name="Stages">The stages recorded, in order.</param>
public sealed record RoundRecord(
    long Round,
    RoundStatus Status,
    string ConfigurationJson,
    DateTimeOffset StartedUtc,
    DateTimeOffset? EndedUtc,
    string? ModelSha256,
    string? AbortReason,
    IReadOnlyList<string> Participants,
    IReadOnlyList<StageRecord> Stages);
