namespace SecureFed.Aggregator.Persistence;

/// <summary>A stored model version (metadata; the bytes are read with <see cref="AggregatorStore.LoadModel"/>).</summary>
/// <param name="Version">The model version (monotonically increasing).</param>
/// <param name="Round">The round that produced it; 0 for a model stored outside any round (the initial model).</param>
/// <param name="Sha256">SHA-256 of the model bytes, lowercase hex.</param>
/// <param name="SizeBytes">The size of the model in bytes.</param>
/// <param name="CreatedUtc">When it was stored.</param>
public sealed record ModelRecord(long Version, long Round, string Sha256, long SizeBytes, DateTimeOffset CreatedUtc);
