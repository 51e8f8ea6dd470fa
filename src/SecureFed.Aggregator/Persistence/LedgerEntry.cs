namespace SecureFed.Aggregator.Persistence;

/// <summary>An entry of the aggregator's ledger (e.g. privacy spend per round, audit checkpoints).</summary>
/// <param name="Sequence">The entry number (1, 2, ...), in insertion order.</param>
/// <param name="Round">The round the entry belongs to, or null.</param>
/// <param name="Kind">What kind of entry it is (free-form, e.g. <c>privacy</c>, <c>checkpoint</c>).</param>
/// <param name="PayloadJson">The entry itself, JSON.</param>
/// <param name="RecordedUtc">When it was recorded.</param>
public sealed record LedgerEntry(long Sequence, long? Round, string Kind, string PayloadJson, DateTimeOffset RecordedUtc);
