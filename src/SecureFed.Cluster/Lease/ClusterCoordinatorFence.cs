using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The coordinator silo's fence: the lease kept by <see cref="CoordinatorLeaseKeeper"/>, and at every commit point the
/// coordinator's state (<see cref="CoordinatorSnapshot"/>) saved to the cluster's database under the lease's epoch
/// (<see cref="PostgresCoordinatorState"/>). <see cref="TakeOverAsync"/> is how a coordinator-eligible silo starts:
/// wait for the lease, then restore the last saved state into its data directory before the aggregator opens it.
/// </summary>
public sealed partial class ClusterCoordinatorFence : ICoordinatorFence, IAsyncDisposable
{
    private readonly CoordinatorLeaseKeeper _keeper;
    private readonly PostgresCoordinatorState _state;
    private readonly ILogger _logger;

    private ClusterCoordinatorFence(CoordinatorLeaseKeeper keeper, PostgresCoordinatorState state, ILogger logger)
    {
        _keeper = keeper;
        _state = state;
        _logger = logger;
    }

    /// <inheritdoc />
    public CancellationToken Lost => _keeper.Lost;

    /// <inheritdoc />
    public long Epoch => _keeper.Epoch;

    /// <summary>
    /// Waits until this silo holds the lease, then writes the state the last coordinator saved into
    /// <paramref name="dataDirectory"/> (moving any older local state aside; nothing saved yet: the local state is used
    /// as it is and saved at the first commit point). The returned fence renews the lease until disposed.
    /// </summary>
    public static async Task<ClusterCoordinatorFence> TakeOverAsync(CoordinatorLeaseKeeper keeper, PostgresCoordinatorState state, string dataDirectory, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keeper);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(logger);
        long epoch = await keeper.AcquireAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            IReadOnlyDictionary<string, byte[]> files = await state.LoadAsync(cancellationToken).ConfigureAwait(false);
            if (files.Count > 0)
            {
                keeper.EnsureHeld(); // do not restore state we may no longer continue from
                string? aside = CoordinatorSnapshot.Restore(files, dataDirectory, epoch);
                Log.Restored(logger, files.Count, files.Values.Sum(f => (long)f.Length), epoch, aside ?? "(none)");
            }
            else
            {
                Log.NothingSaved(logger, epoch);
            }

            return new ClusterCoordinatorFence(keeper, state, logger);
        }
        catch
        {
            await keeper.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public void EnsureHeld() => _keeper.EnsureHeld();

    /// <inheritdoc />
    public async Task CommitAsync(AggregatorState state, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(state);
        _keeper.EnsureHeld();
        // The round store (every model version) is streamed from a temporary copy on disk, not read into memory.
        IReadOnlyDictionary<string, byte[]> files = CoordinatorSnapshot.TakeWithRoundStoreOnDisk(state, out string roundStore);
        try
        {
            var onDisk = new Dictionary<string, string>(StringComparer.Ordinal) { [CoordinatorSnapshot.RoundStoreName] = roundStore };
            int written = await _state.SaveAsync(files, onDisk, _keeper.Holder, _keeper.Epoch, cancellationToken).ConfigureAwait(false);
            Log.Saved(_logger, written, _keeper.Epoch);
        }
        finally
        {
            File.Delete(roundStore);
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _keeper.DisposeAsync();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Coordinator state restored from the cluster's database: {Files} files, {Bytes} bytes, lease epoch {Epoch}; earlier local state moved to {Aside}")]
        public static partial void Restored(ILogger logger, int files, long bytes, long epoch, string aside);

        [LoggerMessage(2, LogLevel.Information, "No coordinator state in the cluster's database yet (lease epoch {Epoch}): starting from the local data directory")]
        public static partial void NothingSaved(ILogger logger, long epoch);

        [LoggerMessage(3, LogLevel.Debug, "Coordinator state saved to the cluster's database: {Files} changed files at lease epoch {Epoch}")]
        public static partial void Saved(ILogger logger, int files, long epoch);
    }
}
