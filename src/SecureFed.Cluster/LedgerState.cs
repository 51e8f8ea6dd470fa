namespace SecureFed.Cluster;

/// <summary>The persisted state of the ledger grain: every round outcome, in order.</summary>
[GenerateSerializer]
[Alias("securefed.LedgerState")]
public sealed class LedgerState
{
    /// <summary>The rounds, in the order they ended.</summary>
    [Id(0)]
    public List<LedgerEntry> Entries { get; set; } = [];
}
