namespace SecureFed.Cluster;

/// <summary>Where a cluster round is: the <c>ProtocolStage</c> name, who is expected and who delivered there, and, when aborted or lost, why.</summary>
[GenerateSerializer]
[Alias("securefed.ClusterRoundProgress")]
public sealed record ClusterRoundProgress(
    [property: Id(0)] string Stage,
    [property: Id(1)] int[] Expected,
    [property: Id(2)] int[] Delivered,
    [property: Id(3)] string? AbortReason);
