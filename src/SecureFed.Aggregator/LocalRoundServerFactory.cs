using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>The default <see cref="IRoundServerFactory"/>: every round attempt in this process (<see cref="LocalRoundServer"/>).</summary>
internal sealed class LocalRoundServerFactory : IRoundServerFactory
{
    public static LocalRoundServerFactory Instance { get; } = new();

    public Task<IRoundServer> OpenAsync(RoundParameters parameters, CancellationToken cancellationToken) => Task.FromResult<IRoundServer>(new LocalRoundServer(parameters));
}
