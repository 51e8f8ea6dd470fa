using System.Runtime;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// Gives the memory of a round's masked-input chunks back to the operating system once the input stage closed. A slice
/// grain holds each site's chunk (a slice of its masked input, 21 MiB per site at 16 M parameters and 3 slices) until the
/// site is committed; after that the chunks are garbage on the large object heap, which the runtime collects only when
/// its budget says so (in `bench cluster` it did not before the round ended). Left there, they sit under the memory the
/// rest of the round allocates (the unmasked slice on its way to the coordinator; on the coordinator the other slices and
/// the next model), so the silo's peak is the sum of both. One blocking, decommitting collection per slice and round,
/// only when the chunks were large, puts the end of the round into the memory they used (docs/benchmarks.md).
/// </summary>
internal static class RoundMemory
{
    /// <summary>Chunks below this many bytes in total are left to the runtime's own collections.</summary>
    internal const long Threshold = 64L << 20;

    /// <summary>Collects (and decommits) when <paramref name="releasedBytes"/> of chunks became garbage; returns whether it did.</summary>
    public static bool Release(long releasedBytes)
    {
        if (releasedBytes < Threshold)
        {
            return false;
        }

        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        return true;
    }
}
