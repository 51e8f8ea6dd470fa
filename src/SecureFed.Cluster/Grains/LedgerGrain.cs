namespace SecureFed.Cluster.Grains;

/// <summary><see cref="ILedgerGrain"/> on the "securefed" grain storage (ADO.NET on PostgreSQL in production).</summary>
internal sealed class LedgerGrain : Grain, ILedgerGrain
{
    /// <summary>The grain storage provider's name.</summary>
    public const string StorageName = "securefed";

    private readonly IPersistentState<LedgerState> _state;

    public LedgerGrain([PersistentState("ledger", StorageName)] IPersistentState<LedgerState> state)
    {
        _state = state;
    }

    public async Task<bool> RecordAsync(LedgerEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        LedgerEntry? existing = _state.State.Entries.FirstOrDefault(e => e.Round == entry.Round && string.Equals(e.SessionId, entry.SessionId, StringComparison.Ordinal));
        if (existing is not null)
        {
            if (existing.Completed == entry.Completed && string.Equals(existing.SumSha256, entry.SumSha256, StringComparison.Ordinal))
            {
                return false;
            }

            throw new ClusterProtocolException(
                $"round {entry.Round} (session {entry.SessionId}) is already recorded as {(existing.Completed ? "completed" : "aborted")}; refusing a different outcome");
        }

        _state.State.Entries.Add(entry);
        await _state.WriteStateAsync().ConfigureAwait(true);
        return true;
    }

    public Task<LedgerEntry[]> EntriesAsync() => Task.FromResult(_state.State.Entries.ToArray());
}
