namespace SecureFed.Cluster.Bench;

/// <summary>The single-process reference round's output: the unmasked sum and its contributors (1-based indices).</summary>
[GenerateSerializer]
[Alias("securefed.ReferenceRoundResult")]
public sealed record ReferenceRoundResult(
    [property: Id(0)] uint[] Sum,
    [property: Id(1)] int[] Contributors);
