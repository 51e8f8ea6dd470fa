namespace SecureFed.Cluster.Bench;

/// <summary>
/// The figures of one <see cref="ClusterBench"/> run. Per-silo arrays are in silo process order (the first is the
/// one started first). Bytes received are Orleans message bytes (headers and bodies, from the bench's clients and from other
/// silos) during the round; CPU seconds are the process's user + system time during the round; peak RSS is the
/// process's high-water mark since it started (Linux VmHWM), idle RSS its resident set just before the round.
/// Round seconds are the time the driver waited for that side's answers (the sites' own masking is not in either).
/// CPU seconds and bytes are counted over the stats window (<see cref="StatsWindowSeconds"/>: the whole round as the
/// driver runs it, both sides and the sites' masking included), so each includes the process's background work over that
/// window, which the idle rates (CPU seconds per second over 10 s after the round) estimate.
/// </summary>
public sealed record ClusterBenchResult(
    int Silos,
    int Agents,
    int Parameters,
    int VectorWords,
    int Dropped,
    int Slices,
    int[] SliceSilo,
    long MaskedInputBytes,
    double ClusterRoundSeconds,
    long[] SiloPeakRssBytes,
    long[] SiloIdleRssBytes,
    long[] SiloBytesReceived,
    double[] SiloCpuSeconds,
    double[] SiloIdleCpuSecondsPerSecond,
    double SingleRoundSeconds,
    long SinglePeakRssBytes,
    long SingleIdleRssBytes,
    long SingleBytesReceived,
    double SingleCpuSeconds,
    double SingleIdleCpuSecondsPerSecond,
    double StatsWindowSeconds,
    int Contributors,
    bool SumsExact,
    bool ModelsEqual,
    bool LedgerRecorded,
    double WallSeconds);
