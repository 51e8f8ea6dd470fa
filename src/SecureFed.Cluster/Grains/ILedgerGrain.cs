namespace SecureFed.Cluster.Grains;

/// <summary>
/// The federation's ledger of round outcomes (key: the federation), persisted in the "securefed" grain storage. A
/// round's outcome is recorded once: a second record for the same round and session is ignored (a retry), a conflicting
/// one is refused.
/// </summary>
[Alias("securefed.ILedgerGrain")]
public interface ILedgerGrain : IGrainWithStringKey
{
    /// <summary>Records a round's outcome; returns false when that exact outcome was already recorded.</summary>
    [Alias("Record")]
    Task<bool> RecordAsync(LedgerEntry entry);

    /// <summary>Every recorded outcome, in order.</summary>
    [Alias("Entries")]
    Task<LedgerEntry[]> EntriesAsync();
}
