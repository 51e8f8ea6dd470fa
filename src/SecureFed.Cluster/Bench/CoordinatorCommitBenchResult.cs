namespace SecureFed.Cluster.Bench;

/// <summary>
/// One commit point of <see cref="CoordinatorCommitBench"/>: the coordinator fence's <c>CommitAsync</c> right after
/// model version <see cref="Version"/> entered the round store. Bytes sent are Npgsql's count of bytes written to the
/// server by the bench's data source during the call. Peak working set is the process's resident set high-water mark
/// over the call (Linux VmHWM reset before it, or sampled every 10 ms where it cannot be reset); the working set before is
/// its resident set just before. Managed bytes are the process's managed allocations during the call.
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
    bool LeaseHeldAfter);

/// <summary>
/// One takeover of <see cref="CoordinatorCommitBench"/>: a second silo's <c>ClusterCoordinatorFence.TakeOverAsync</c>
/// into an empty data directory, restoring every committed model version; then checked (outside the timing): the
/// restored round store holds the same versions, each byte for byte equal to the committed one.
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
    bool RestoredEqual);

/// <summary>
/// The figures of one <see cref="CoordinatorCommitBench"/> run; medians over repeats for each version's commit point and
/// for the takeover (null where none ran). <see cref="LeaseLostAtVersion"/>: the version whose commit point outlasted the lease (the repeat
/// stopped there: no later commit point and no takeover), or null.
/// </summary>
public sealed record CoordinatorCommitBenchResult(
    int Parameters,
    long ModelBytes,
    int Versions,
    int Repeats,
    double LeaseSeconds,
    long? LeaseLostAtVersion,
    bool PeakFromVmHwm,
    double?[] MedianCommitSeconds,
    double? MedianTakeoverSeconds,
    IReadOnlyList<CoordinatorCommitFigures> Commits,
    IReadOnlyList<CoordinatorTakeoverFigures> Takeovers,
    bool RestoredEqual,
    double WallSeconds);
