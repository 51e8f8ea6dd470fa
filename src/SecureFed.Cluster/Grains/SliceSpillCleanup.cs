using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// The spill directory's life (<see cref="SliceSpillStore"/>), as a participant of the silo's own lifecycle at
/// <see cref="ServiceLifecycleStage.RuntimeInitialize"/>: at start-up, before any grain is activated, it deletes the spill
/// files a killed silo left in this silo's directory and removes other silos' empty directories left idle for an hour
/// (silos killed and never started again on their port); at a stop it removes the directory if it is empty. The stop
/// runs after the grains were deactivated (the lifecycle stops in reverse order), when every spill has been disposed.
/// It used to be a hosted service, which the host stops before the silo (hosted services stop in reverse order of
/// registration, and the silo's own is registered first): slices of rounds still open kept their spills until the silo
/// deactivated them afterwards, so the directory was not empty yet and stayed behind, empty.
/// </summary>
internal sealed partial class SliceSpillCleanup : ILifecycleParticipant<ISiloLifecycle>
{
    /// <summary>How long another silo's empty spill directory must be idle before a starting silo removes it.</summary>
    public static readonly TimeSpan AbandonedAfter = TimeSpan.FromHours(1);

    private readonly SliceSpillStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger<SliceSpillCleanup> _logger;

    public SliceSpillCleanup(SliceSpillStore store, TimeProvider time, ILogger<SliceSpillCleanup> logger)
    {
        _store = store;
        _time = time;
        _logger = logger;
    }

    public void Participate(ISiloLifecycle lifecycle)
    {
        ArgumentNullException.ThrowIfNull(lifecycle);
        lifecycle.Subscribe(nameof(SliceSpillCleanup), ServiceLifecycleStage.RuntimeInitialize, Start, Stop);
    }

    private Task Start(CancellationToken cancellationToken)
    {
        int deleted = _store.DeleteStale();
        if (deleted > 0)
        {
            Log.DeletedStale(_logger, deleted, _store.Directory);
        }

        foreach (string removed in _store.RemoveAbandonedSiblings(AbandonedAfter, _time.GetUtcNow().UtcDateTime))
        {
            Log.RemovedAbandoned(_logger, removed);
        }

        return Task.CompletedTask;
    }

    private Task Stop(CancellationToken cancellationToken)
    {
        if (!_store.RemoveIfEmpty())
        {
            Log.DirectoryKept(_logger, _store.Directory, _store.OpenSpills);
        }

        return Task.CompletedTask;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Deleted {Count} stale slice spill files from {Directory} (left by a silo that did not stop)")]
        public static partial void DeletedStale(ILogger logger, int count, string directory);

        [LoggerMessage(2, LogLevel.Information, "Removed the empty slice spill directory {Directory} of a silo that did not stop")]
        public static partial void RemovedAbandoned(ILogger logger, string directory);

        [LoggerMessage(3, LogLevel.Warning, "The slice spill directory {Directory} was not removed at the stop ({Open} spills still open)")]
        public static partial void DirectoryKept(ILogger logger, string directory, long open);
    }
}
