namespace SecureFed.Protocol;

/// <summary>
/// The outcome of a completed round: the sum of the survivors' inputs mod 2^b, who is in it, and who dropped at which
/// stage.
/// </summary>
/// <param name="Sum">Σ_{u ∈ U3} x_u mod 2^b, length m.</param>
/// <param name="Contributors">U3: indices whose inputs are in the sum.</param>
/// <param name="DroppedBeforeShares">Advertised keys but sent no shares (U1 \ U2).</param>
/// <param name="DroppedBeforeInput">Sent shares but no masked input (U2 \ U3): their s was reconstructed.</param>
/// <param name="DroppedAfterInput">In the sum but did not sign or answer unmasking (U3 \ U5).</param>
/// <param name="RejectedShares">Revealed shares that were wrong (not on the verified secret's polynomial) and were not used.</param>
public sealed record AggregationResult(
    uint[] Sum,
    IReadOnlyList<int> Contributors,
    IReadOnlyList<int> DroppedBeforeShares,
    IReadOnlyList<int> DroppedBeforeInput,
    IReadOnlyList<int> DroppedAfterInput,
    IReadOnlyList<RejectedShare> RejectedShares);
