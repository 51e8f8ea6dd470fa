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
/// <see cref="StageTimeoutSeconds"/>, the aggregators' <c>StageTimeoutSeconds</c> on both sides; the figures after the
/// deadline are separate: <see cref="SingleUnmaskSeconds"/> / <see cref="ClusterUnmaskSeconds"/>, the unmasking stage's
/// close work as the aggregator timed it (reconstructing the seeds and removing every mask; on the cluster the round grain
/// and every slice grain), <see cref="SingleAfterInputSeconds"/> / <see cref="ClusterAfterInputSeconds"/>, from the close of
/// the masked-input stage (the deadline, with dropped sites) to the round's completion, both times from the aggregator's
/// round store (so the consistency and unmasking stages' exchanges with the agents, the unmasking work, and the model's
/// fusion and storage), and <see cref="SingleUnmaskCpuSeconds"/> / <see cref="SiloUnmaskCpuSeconds"/>, each process's CPU
/// seconds from the aggregator's log line that the unmasking stage closed to its line that the work was done.
/// <see cref="AgentsVia"/>: "coordinator" when the cluster's agents were given the coordinator silo's endpoint, "front" when
/// each was given one slice silo's only (its control calls forwarded to the coordinator; the bytes received are still the
/// agents' requests to each process, so a front's include the control calls it forwarded, the coordinator's not).
/// What the fronts pass on is apart, in the same unit (gRPC message bytes: protobuf plus the 5-byte prefix, before HTTP/2
/// and TLS framing), each as the process itself counted it: <see cref="SiloBytesForwarded"/>, per silo, the agents' request
/// bytes its front sent on to the coordinator (0 for the coordinator, and for every silo when the agents were given the
/// coordinator's endpoint); <see cref="SiloBytesReturned"/>, per silo, the coordinator's answers its front passed back to
/// agents; <see cref="CoordinatorBytesFromFronts"/>, the request bytes the coordinator received in calls forwarded by
/// other silos. The coordinator's whole ingress from agents, directly or through the fronts, is its
/// <see cref="SiloBytesReceived"/> plus <see cref="CoordinatorBytesFromFronts"/>; the latter equals the sum of
/// <see cref="SiloBytesForwarded"/> unless a forwarded call broke off on the way (a front counts a message when it hands it
/// to the call, the coordinator when it reads it).
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
    double WallSeconds,
    string AgentsVia,
    double SingleUnmaskSeconds,
    double SingleAfterInputSeconds,
    double SingleUnmaskCpuSeconds,
    double ClusterUnmaskSeconds,
    double ClusterAfterInputSeconds,
    double[] SiloUnmaskCpuSeconds,
    long[] SiloBytesForwarded,
    long[] SiloBytesReturned,
    long CoordinatorBytesFromFronts);
