using TorchSharp;

namespace SecureFed.Tagger;

/// <summary>Process-wide libtorch settings.</summary>
public static class TorchRuntime
{
    /// <summary>
    /// The most intra-op threads a command may ask for: this machine's logical processors. More never runs faster (the
    /// threads spin-wait at barriers), and libtorch starts every one it is asked for: <c>--threads 100000</c> started some
    /// 32,000 threads, which ignored SIGTERM and loaded the machine for minutes before the first step.
    /// </summary>
    public static int MaxThreads => Math.Max(1, Environment.ProcessorCount);

    /// <summary>Why <paramref name="threads"/> is not a thread count a command may ask for (0 for auto, 1 to <see cref="MaxThreads"/>), or null.</summary>
    public static string? ThreadsProblem(int threads) => threads >= 0 && threads <= MaxThreads
        ? null
        : $"--threads must be 0 (auto) or 1 to {MaxThreads} (this machine's logical processors), got {threads}.";

    /// <summary>
    /// Sets libtorch's intra-op thread count. 0 means auto: half the logical processors, at least 1. On a shared
    /// 2-core machine one thread is much faster than two, because libgomp threads spin-wait at barriers when the
    /// cores are oversubscribed.
    /// </summary>
    /// <param name="threads">Threads (at most <see cref="MaxThreads"/>), or 0 for auto.</param>
    /// <returns>The thread count applied.</returns>
    public static int SetThreads(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threads, MaxThreads);
        int n = threads > 0 ? threads : Math.Max(1, Environment.ProcessorCount / 2);
        torch.set_num_threads(n);
        return n;
    }

    /// <summary>
    /// Guards torch's process-wide generator while it is seeded and used for one thing (a model's initialisation), so
    /// two models created at once on two threads each get the weights their seed gives.
    /// </summary>
    internal static Lock GlobalGeneratorLock { get; } = new();
}
