namespace SecureFed.Cluster;

/// <summary>
/// One round in the federation's ledger: completed (with the SHA-256 of the unmasked sum and who is in it) or aborted
/// (with the reason). Kept by the ledger grain in grain storage (PostgreSQL in production), so it survives silo restarts.
/// <see cref="Epoch"/> is the coordinator lease epoch of the coordinator that recorded it (docs/cluster.md §6), 0 when
/// no lease is in use (tests, the grain-level benchmark) or when a round grain recorded its own abort.
/// </summary>
[GenerateSerializer]
[Alias("securefed.LedgerEntry")]
public sealed record LedgerEntry(
    [property: Id(0)] long Round,
    [property: Id(1)] string SessionId,
    [property: Id(2)] bool Completed,
    [property: Id(3)] string? SumSha256,
    [property: Id(4)] string[] Contributors,
    [property: Id(5)] string? AbortReason,
    [property: Id(6)] DateTimeOffset At,
    [property: Id(7)] long Epoch = 0);
