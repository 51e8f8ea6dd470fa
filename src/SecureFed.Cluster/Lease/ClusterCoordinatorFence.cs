using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The coordinator silo's fence: the lease kept by <see cref="CoordinatorLeaseKeeper"/>, and at every commit point the
/// coordinator's state (<see cref="CoordinatorSnapshot"/>) saved to the cluster's database under the lease's epoch
/// (<see cref="PostgresCoordinatorState"/>). <see cref="TakeOverAsync"/> is how a coordinator-eligible silo starts:
/// wait for the lease, then restore the last saved state (the snapshot files and every model version) into its data
/// directory before the aggregator opens it.
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
    /// <exception cref="InvalidDataException">A saved file or model version is missing or corrupt (the message names it);
    /// <paramref name="dataDirectory"/> was left as it was.</exception>
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

                // Restored beside the data directory and completed there (every model version streamed from its row and
                // checked); the data directory is replaced only once all of it is in place, and left untouched otherwise.
                string staged = CoordinatorSnapshot.Stage(files, dataDirectory, epoch);
                try
                {
                    (int models, long modelBytes) = (0, 0L);
                    if (files.ContainsKey(CoordinatorSnapshot.RoundStoreName))
                    {
                        using AggregatorStore store = AggregatorStore.Open(Path.Combine(staged, CoordinatorSnapshot.RoundStoreName));
                        (models, modelBytes) = await state.RestoreModelsAsync(store, cancellationToken).ConfigureAwait(false);
                    }

                    keeper.EnsureHeld();
                    string? aside = CoordinatorSnapshot.Install(staged, dataDirectory, epoch);
                    Log.Restored(logger, files.Count, files.Values.Sum(f => (long)f.Length), models, modelBytes, epoch, aside ?? "(none)");
                }
                catch
                {
                    if (Directory.Exists(staged))
                    {
                        Directory.Delete(staged, recursive: true);
                    }

                    throw;
                }
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
        // The round store is saved without model bytes (streamed from a temporary copy on disk); each model version is
        // sent once, streamed from the store, in its own row.
        IReadOnlyDictionary<string, byte[]> files = CoordinatorSnapshot.TakeWithoutModelBytes(state, out string roundStore, out IReadOnlyList<ModelRecord> models);
        try
        {
            var onDisk = new Dictionary<string, string>(StringComparer.Ordinal) { [CoordinatorSnapshot.RoundStoreName] = roundStore };
            CoordinatorSaveResult saved = await _state.SaveAsync(files, onDisk, models, state.Store.OpenModel, _keeper.Holder, _keeper.Epoch, cancellationToken).ConfigureAwait(false);
            Log.Saved(_logger, saved.Files, saved.Models, saved.ModelBytes, _keeper.Epoch);
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
        [LoggerMessage(1, LogLevel.Information, "Coordinator state restored from the cluster's database: {Files} files, {Bytes} bytes, {Models} model versions, {ModelBytes} model bytes, lease epoch {Epoch}; earlier local state moved to {Aside}")]
        public static partial void Restored(ILogger logger, int files, long bytes, int models, long modelBytes, long epoch, string aside);

        [LoggerMessage(2, LogLevel.Information, "No coordinator state in the cluster's database yet (lease epoch {Epoch}): starting from the local data directory")]
        public static partial void NothingSaved(ILogger logger, long epoch);

        [LoggerMessage(3, LogLevel.Debug, "Coordinator state saved to the cluster's database: {Files} changed files, {Models} new model versions ({ModelBytes} bytes) at lease epoch {Epoch}")]
        public static partial void Saved(ILogger logger, int files, int models, long modelBytes, long epoch);
    }
}
