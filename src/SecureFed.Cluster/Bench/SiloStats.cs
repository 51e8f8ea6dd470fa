namespace SecureFed.Cluster.Bench;

/// <summary>
/// One silo process's resource figures (<see cref="ISiloStatsGrain"/>): Orleans message bytes received and sent since
/// the silo started, peak and current resident set (Linux <c>VmHWM</c>/<c>VmRSS</c>; -1 elsewhere) and CPU time.
/// </summary>
[GenerateSerializer]
[Alias("securefed.SiloStats")]
public sealed record SiloStats(
    [property: Id(0)] string Silo,
    [property: Id(1)] long BytesReceived,
    [property: Id(2)] long BytesSent,
    [property: Id(3)] long PeakRssBytes,
    [property: Id(4)] long RssBytes,
    [property: Id(5)] double CpuSeconds);
