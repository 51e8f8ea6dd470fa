namespace SecureFed.Tagger.Tests;

/// <summary>Reports on the trainer's own thread, as it happens (<see cref="Progress{T}"/> posts to the thread pool, after the fact).</summary>
internal sealed class SyncProgress(Action<TrainProgress> report) : IProgress<TrainProgress>
{
    public void Report(TrainProgress value) => report(value);
}
