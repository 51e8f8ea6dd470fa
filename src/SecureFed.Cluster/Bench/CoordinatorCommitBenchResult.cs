namespace SecureFed.Cluster.Bench;

/// <summary>
/// One commit point of <see cref="CoordinatorCommitBench"/>: the coordinator fence's <c>CommitAsync</c> right after
/// model version <see cref="Version"/> entered the round store. Bytes sent are Npgsql's count of bytes written to the
/// server by the bench's data source during the call. Peak working set is the process's resident set high-water mark
/// over the call (Linux VmHWM reset before it, or sampled every 10 ms where it cannot be reset); the working set before is
/// its resident set just before. Managed bytes are the process's managed allocations during the call. Server memory: the
/// throw-away PostgreSQL server's peaks during the call (<see cref="ServerMemoryPeak"/>; null for an external server).
/// </summary>
public sealed record CoordinatorCommitFigures(
    int Repeat,
    long Version,
    long ModelBytes,
    double Seconds,
    long BytesSent,
    long WorkingSetBeforeBytes,
    long PeakWorkingSetBytes,
    long ManagedBytesAllocated,
    bool LeaseHeldAfter,
    ServerMemoryPeak? ServerMemory);

/// <summary>
/// One takeover of <see cref="CoordinatorCommitBench"/>: a second silo's <c>ClusterCoordinatorFence.TakeOverAsync</c>
/// into an empty data directory, restoring every committed model version; then checked (outside the timing): the
/// restored round store holds the same versions, each byte for byte equal to the committed one. Server memory: the
/// throw-away PostgreSQL server's peaks during the takeover (<see cref="ServerMemoryPeak"/>; null for an external server).
/// </summary>
public sealed record CoordinatorTakeoverFigures(
    int Repeat,
    double Seconds,
    int VersionsRestored,
    long LatestVersion,
    long ModelBytesRestored,
    long WorkingSetBeforeBytes,
    long PeakWorkingSetBytes,
    long ManagedBytesAllocated,
    bool RestoredEqual,
    ServerMemoryPeak? ServerMemory);

/// <summary>
/// The figures of one <see cref="CoordinatorCommitBench"/> run; medians over repeats for each version's commit point and
/// for the takeover (null where none ran). <see cref="LeaseLostAtVersion"/>: the version whose commit point outlasted the lease (the repeat
/// stopped there: no later commit point and no takeover), or null. <see cref="Fsync"/> is the server's <c>fsync</c>
/// setting as it reports it (<c>SHOW fsync</c>: "on" or "off"). The server's peak memory over the whole run (from its
/// start to the last figure) is sampled every 100 ms for the throw-away server only (<see cref="ServerMemorySampler"/>;
/// null for an external server, or where /proc cannot be read): the peak sum of the resident sets of the postmaster and
/// its descendants (it counts shared buffers once per process that touched them), the peak resident set of a single
/// process, and the peak sum of their proportional sets (shared pages split among the processes mapping them: the
/// better figure; null where smaps_rollup is not readable).
/// </summary>
public sealed record CoordinatorCommitBenchResult(
    int Parameters,
    long ModelBytes,
    int Versions,
    int Repeats,
    double LeaseSeconds,
    string Fsync,
    long? ServerPeakRssBytes,
    long? ServerPeakProcessRssBytes,
    long? ServerPeakPssBytes,
    int? ServerPeakProcesses,
    long? LeaseLostAtVersion,
    bool PeakFromVmHwm,
    double?[] MedianCommitSeconds,
    double? MedianTakeoverSeconds,
    IReadOnlyList<CoordinatorCommitFigures> Commits,
    IReadOnlyList<CoordinatorTakeoverFigures> Takeovers,
    bool RestoredEqual,
    double WallSeconds);
