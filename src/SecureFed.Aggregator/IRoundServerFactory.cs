using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>Opens the server side of each round attempt (<see cref="IRoundServer"/>): in this process by default.</summary>
public interface IRoundServerFactory
{
    /// <summary>Opens a round attempt with <paramref name="parameters"/>.</summary>
    Task<IRoundServer> OpenAsync(RoundParameters parameters, CancellationToken cancellationToken);

    /// <summary>
    /// Records, where the round servers keep an outcome ledger of their own (the aggregator cluster's ledger grain), that
    /// the attempt with <paramref name="parameters"/> aborted because <see cref="OpenAsync"/> failed, so that ledger lists
    /// every attempt as the coordinator's round store does. Nothing for the single process. The coordinator calls it
    /// best effort (what made the open fail may keep the ledger out of reach too).
    /// </summary>
    Task RecordOpenFailedAsync(RoundParameters parameters, string reason, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Records, where the round servers keep an outcome ledger of their own (the aggregator cluster's ledger grain), that
    /// round <paramref name="round"/> of <paramref name="federation"/> (session <paramref name="sessionId"/>), left open by
    /// a previous coordinator, was aborted at start-up with <paramref name="reason"/> (a coordinator takeover), so that
    /// ledger lists that attempt as the round store does. Nothing for the single process. Returns false when the ledger
    /// already held that outcome.
    /// </summary>
    /// <exception cref="InvalidOperationException">The ledger holds another outcome for that round and session (e.g. completed).</exception>
    Task<bool> RecordInterruptedAsync(string federation, long round, string sessionId, string reason, CancellationToken cancellationToken) => Task.FromResult(false);
}
