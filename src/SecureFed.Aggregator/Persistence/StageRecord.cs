namespace SecureFed.Aggregator.Persistence;

/// <summary>A protocol stage reached in a round and the sites that took part in it.</summary>
/// <param name="Stage">The stage name (e.g. <c>AdvertiseKeys</c>, <c>ShareKeys</c>, <c>MaskedInput</c>, <c>Unmasking</c>).</param>
/// <param name="Participants">The sites that took part, sorted.</param>
/// <param name="RecordedUtc">When the stage was recorded.</param>
public sealed record StageRecord(string Stage, IReadOnlyList<string> Participants, DateTimeOffset RecordedUtc);
