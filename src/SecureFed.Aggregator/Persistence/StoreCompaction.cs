namespace SecureFed.Aggregator.Persistence;

/// <summary>The outcome of <see cref="AggregatorStore.Compact"/>.</summary>
/// <param name="Path">The full path of the database file.</param>
/// <param name="BytesBefore">The database file and its write-ahead log before, in bytes.</param>
/// <param name="BytesAfter">The database file and its write-ahead log after, in bytes.</param>
/// <param name="WasIncremental">Whether the file already used incremental auto-vacuum (a store created by this version).</param>
public sealed record StoreCompaction(string Path, long BytesBefore, long BytesAfter, bool WasIncremental);
