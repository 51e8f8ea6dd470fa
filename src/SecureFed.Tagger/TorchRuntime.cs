using System.Runtime.InteropServices;
using TorchSharp;

namespace SecureFed.Tagger;

/// <summary>Process-wide libtorch settings.</summary>
public static partial class TorchRuntime
{
    /// <summary>
    /// The environment variable libtorch's CPU allocator reads once, at its first allocation: "1" = ask the kernel for
    /// transparent huge pages (madvise MADV_HUGEPAGE, 2 MB pages) for every tensor of 2 MB or more.
    /// </summary>
    public const string HugePagesVariable = "THP_MEM_ALLOC_ENABLE";

    /// <summary>
    /// Turns on libtorch's transparent huge pages for large tensors (<see cref="HugePagesVariable"/> = 1) unless the
    /// process was started with that variable set (0 keeps them off). DP-SGD allocates and frees per-example tensors of
    /// tens of megabytes at every step; with 4 KB pages each is faulted in page by page. Measured (docs/benchmarks.md,
    /// "Huge pages"): two rounds of the demo model's DP-SGD at q 0.3 on NCBI-disease in 164 s instead of 312 s, kernel
    /// time 14 s instead of 100 s, the same model. Effective only where the kernel's
    /// <c>/sys/kernel/mm/transparent_hugepage/enabled</c> is <c>madvise</c> or <c>always</c>; elsewhere nothing changes.
    /// Linux only. Call it first thing in a process (the CLI's entry point does), before another thread reads the
    /// environment and before the first tensor: the native environment is changed with setenv, which is not thread-safe.
    /// </summary>
    /// <returns>True when this call set the variable; false when it was set already, or on another OS or C library.</returns>
    public static bool EnableHugePageAllocations()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(HugePagesVariable) is not null)
        {
            return false;
        }

        try
        {
            // .NET keeps its own copy of the environment on Unix: libtorch reads the C library's, so set that one.
            return SetNativeEnvironmentVariable(HugePagesVariable, "1", 0) == 0;
        }
        catch (DllNotFoundException)
        {
            return false; // not glibc (musl names its C library otherwise): libtorch's default stays
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>
    /// The value of <see cref="HugePagesVariable"/> libtorch reads (the C library's environment, which
    /// <see cref="EnableHugePageAllocations"/> changes and <see cref="Environment.GetEnvironmentVariable(string)"/> does not
    /// see): "1" when huge pages are on, null or another value when they are off; null on other operating systems.
    /// </summary>
    public static string? HugePagesSetting()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8(GetNativeEnvironmentVariable(HugePagesVariable));
        }
        catch (DllNotFoundException)
        {
            return Environment.GetEnvironmentVariable(HugePagesVariable);
        }
        catch (EntryPointNotFoundException)
        {
            return Environment.GetEnvironmentVariable(HugePagesVariable);
        }
    }

    [LibraryImport("libc.so.6", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetNativeEnvironmentVariable(string name, string value, int overwrite);

    [LibraryImport("libc.so.6", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint GetNativeEnvironmentVariable(string name);

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
