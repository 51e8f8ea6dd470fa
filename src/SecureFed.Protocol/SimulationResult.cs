namespace SecureFed.Protocol;

/// <summary>What a <see cref="SecAggSimulation"/> run produced and cost.</summary>
/// <param name="Aggregation">The server's result.</param>
/// <param name="BytesSentPerClient">Payload bytes each client sent (index i-1).</param>
/// <param name="MaskTimePerClient">Time each client spent in MaskInput (zero for those that dropped before).</param>
/// <param name="ClientTimePerClient">Total protocol time of each client.</param>
/// <param name="ServerTime">Total server time including unmasking.</param>
/// <param name="ServerUnmaskTime">Time of <see cref="ServerRound.Finish"/> (share reconstruction and mask removal).</param>
/// <param name="ServerUnmaskCpuTime">Process CPU time during <see cref="ServerRound.Finish"/> (only the server runs then), so
/// the unmasking cost can be read on a shared machine.</param>
public sealed record SimulationResult(
    AggregationResult Aggregation,
    IReadOnlyList<long> BytesSentPerClient,
    IReadOnlyList<TimeSpan> MaskTimePerClient,
    IReadOnlyList<TimeSpan> ClientTimePerClient,
    TimeSpan ServerTime,
    TimeSpan ServerUnmaskTime,
    TimeSpan ServerUnmaskCpuTime);
