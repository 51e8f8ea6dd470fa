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
}
