using SecureFed.Protocol;

namespace SecureFed.Cluster;

/// <summary>
/// A completed cluster round, without the sum: the sum lives in the slice grains (<see cref="Layout"/> says where);
/// <see cref="ClusterRoundClient.FinishAsync"/> gathers it.
/// </summary>
[GenerateSerializer]
[Alias("securefed.ClusterRoundResult")]
public sealed record ClusterRoundResult(
    [property: Id(0)] SliceLayout Layout,
    [property: Id(1)] int[] Contributors,
    [property: Id(2)] int[] DroppedBeforeShares,
    [property: Id(3)] int[] DroppedBeforeInput,
    [property: Id(4)] int[] DroppedAfterInput,
    [property: Id(5)] RejectedShare[] RejectedShares)
{
    /// <summary>The protocol's result with the gathered <paramref name="sum"/>.</summary>
    public AggregationResult ToAggregationResult(uint[] sum) => new(sum, Contributors, DroppedBeforeShares, DroppedBeforeInput, DroppedAfterInput, RejectedShares);
}
