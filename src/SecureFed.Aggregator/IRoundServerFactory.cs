using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>Opens the server side of each round attempt (<see cref="IRoundServer"/>): in this process by default.</summary>
public interface IRoundServerFactory
{
    /// <summary>Opens a round attempt with <paramref name="parameters"/>.</summary>
    Task<IRoundServer> OpenAsync(RoundParameters parameters, CancellationToken cancellationToken);
}
