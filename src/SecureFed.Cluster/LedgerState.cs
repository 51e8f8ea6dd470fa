namespace SecureFed.Cluster;

/// <summary>The persisted state of the ledger grain: every round outcome, in order.</summary>
[GenerateSerializer]
[Alias("securefed.LedgerState")]
public sealed class LedgerState
{
    /// <summary>The rounds, in the order they ended.</summary>
    [Id(0)]
    public List<LedgerEntry> Entries { get; set; } = [];

    /// <summary>
    /// The highest coordinator lease epoch that has recorded an outcome: a completed round from a lower epoch (a
    /// coordinator that lost its lease and does not know it yet) is refused.
    /// </summary>
    [Id(1)]
    public long Epoch { get; set; }
}
