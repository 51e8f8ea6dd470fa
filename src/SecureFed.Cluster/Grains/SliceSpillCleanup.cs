using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// At silo start-up, deletes the spill files a killed silo left in this silo's spill directory (<see cref="SliceSpillStore"/>);
/// at a clean stop, removes the directory if it is empty.
/// </summary>
internal sealed partial class SliceSpillCleanup : IHostedService
{
    private readonly SliceSpillStore _store;
    private readonly ILogger<SliceSpillCleanup> _logger;

    public SliceSpillCleanup(SliceSpillStore store, ILogger<SliceSpillCleanup> logger)
    {
        _store = store;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        int deleted = _store.DeleteStale();
        if (deleted > 0)
        {
            Log.DeletedStale(_logger, deleted, _store.Directory);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        // Leaves no empty directory behind (each silo port has its own); a directory still holding spills stays for the next start.
        try
        {
            Directory.Delete(_store.Directory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return Task.CompletedTask;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Deleted {Count} stale slice spill files from {Directory} (left by a silo that did not stop)")]
        public static partial void DeletedStale(ILogger logger, int count, string directory);
    }
}
