using SecureFed.Aggregator.Persistence;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The server update rule's state a commit point saves (<see cref="PostgresCoordinatorState"/>): the round store's
/// saved moments as they stand (<see cref="Saved"/>; null when it saves none: average, or no round yet), and how to read
/// their bytes (<see cref="Open"/>: a model version's moments, first then second, as <see cref="AggregatorStore.OpenServerOptimizer"/>).
/// </summary>
/// <param name="Saved">The moments' model version, rule, steps and sizes, or null.</param>
/// <param name="Open">Opens the moments of a model version as a seekable stream (disposed by the caller).</param>
public sealed record CoordinatorMoments(ServerOptimizerRecord? Saved, Func<long, Stream> Open)
{
    /// <summary>The moments of <paramref name="store"/>.</summary>
    public static CoordinatorMoments Of(AggregatorStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        return new CoordinatorMoments(store.ServerOptimizerMetadata(), store.OpenServerOptimizer);
    }
}
