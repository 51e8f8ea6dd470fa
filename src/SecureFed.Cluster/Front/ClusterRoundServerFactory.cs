using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Front;

/// <summary>
/// Opens each round attempt of the coordinator silo on the cluster: the round grain and its slices
/// (<see cref="ClusterRoundClient.OpenAsync"/>), cut into slices of <see cref="AggregatorClusterOptions.SliceSize"/> words.
/// </summary>
public sealed class ClusterRoundServerFactory : IRoundServerFactory
{
    private readonly IGrainFactory _grains;
    private readonly int _sliceSize;
    private readonly ILogger _logger;

    /// <summary>Creates the factory over <paramref name="grains"/> (the coordinator silo's own grain factory).</summary>
    public ClusterRoundServerFactory(IGrainFactory grains, int sliceSize, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sliceSize);
        ArgumentNullException.ThrowIfNull(logger);
        _grains = grains;
        _sliceSize = sliceSize;
        _logger = logger;
    }

    /// <inheritdoc />
    public async Task<IRoundServer> OpenAsync(RoundParameters parameters, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var client = new ClusterRoundClient(_grains, parameters.FederationId, parameters.Round);
        await client.OpenAsync(ClusterRoundSpec.From(parameters, _sliceSize), cancellationToken).ConfigureAwait(false);
        return new ClusterRoundServer(client, parameters, _logger);
    }
}
