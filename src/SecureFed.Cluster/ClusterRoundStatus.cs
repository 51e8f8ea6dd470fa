namespace SecureFed.Cluster;

/// <summary>Where a cluster round is: the <c>ProtocolStage</c> name and, when aborted, why.</summary>
[GenerateSerializer]
[Alias("securefed.ClusterRoundStatus")]
public sealed record ClusterRoundStatus([property: Id(0)] string Stage, [property: Id(1)] string? AbortReason);
