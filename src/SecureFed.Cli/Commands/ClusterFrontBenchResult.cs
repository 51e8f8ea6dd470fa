namespace SecureFed.Cli.Commands;

/// <summary>
/// The figures of one <c>bench cluster --front grpc</c> run (<see cref="ClusterFrontBench"/>). Per-silo arrays are in
/// silo order: the slice-only silos first, the coordinator silo last (<see cref="SiloRoles"/>). Bytes received are the
/// gRPC request bytes the agents sent to that process's endpoint (every call; protobuf messages with their 5-byte gRPC
/// prefixes, before HTTP/2 and TLS framing); messages between silos (Orleans) are not in them. Peak RSS is the process's
/// high-water mark since it started (Linux VmHWM), idle RSS its resident set when it was ready; CPU seconds are user +
/// system time from ready to the end of its side of the run. Round time is from the aggregator's "Round 1 opened" to the
/// last agent's report of the completed round. <see cref="ModelChanged"/>: the fused model differs from the initial one
/// (so equal models are not two untouched copies). With <see cref="Dropped"/> sites (they share their keys and never upload
/// their masked input) the round times include the wait for the masked-input stage's deadline,
/// <see cref="StageTimeoutSeconds"/>, the aggregators' <c>StageTimeoutSeconds</c> on both sides.
/// </summary>
internal sealed record ClusterFrontBenchResult(
    string Front,
    int Silos,
    int Agents,
    int Dropped,
    int StageTimeoutSeconds,
    int Parameters,
    int VectorWords,
    int SliceSize,
    string[] SiloRoles,
    long MaskedInputBytes,
    double ClusterRoundSeconds,
    long[] SiloPeakRssBytes,
    long[] SiloIdleRssBytes,
    long[] SiloBytesReceived,
    double[] SiloCpuSeconds,
    double SingleRoundSeconds,
    long SinglePeakRssBytes,
    long SingleIdleRssBytes,
    long SingleBytesReceived,
    double SingleCpuSeconds,
    long AgentsPeakRssBytes,
    int Contributors,
    bool InputsEqual,
    bool ModelsEqual,
    bool ModelChanged,
    double WallSeconds);
