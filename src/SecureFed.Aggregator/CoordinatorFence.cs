namespace SecureFed.Aggregator;

/// <summary>The fences that need no lease.</summary>
public static class CoordinatorFence
{
    /// <summary>The single-process aggregator: always the coordinator of its federation.</summary>
    public static ICoordinatorFence Always { get; } = new AlwaysHeld();

    private sealed class AlwaysHeld : ICoordinatorFence
    {
        public CancellationToken Lost => CancellationToken.None;

        public long Epoch => 0;

        public void EnsureHeld()
        {
        }

        public Task CommitAsync(AggregatorState state, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task SaveAuditAsync(AggregatorState state, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
