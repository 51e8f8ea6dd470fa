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

        // Fencing by the coordinator lease epoch: once a coordinator of epoch N has written, a coordinator of a lower epoch
        // (it lost its lease and does not know it yet, e.g. after a long pause) cannot record a completed round. It may still
        // record an abort: that reveals nothing and tells the auditor what happened to its attempt.
        long epochBefore = _state.State.Epoch;
        if (entry.Completed && entry.Epoch < epochBefore)
        {
            throw new ClusterProtocolException(
                $"round {entry.Round} (session {entry.SessionId}): a completed outcome from coordinator lease epoch {entry.Epoch}, but epoch {epochBefore} has recorded outcomes since; a coordinator that lost its lease cannot record a completed round");
        }

        _state.State.Entries.Add(entry);
        _state.State.Epoch = Math.Max(epochBefore, entry.Epoch);
        try
        {
            await _state.WriteStateAsync().ConfigureAwait(true);
        }
        catch
        {
            // Not stored: take the entry back out, or the caller's retry would be answered "already recorded" and the
            // outcome never stored. The activation goes too, so the next call reads what the storage holds (a write that
            // did land before the failure is then found there, not written twice).
            _state.State.Entries.Remove(entry);
            _state.State.Epoch = epochBefore;
            DeactivateOnIdle();
            throw;
        }

        return true;
    }

    public Task<LedgerEntry[]> EntriesAsync() => Task.FromResult(_state.State.Entries.ToArray());
}
