namespace SecureFed.Protocol;

/// <summary>
/// Unmasking request from the aggregator: the survivor set U3 (whose masked inputs are in the sum, so their
/// self-mask seeds b must be rebuilt), the dropped set (shared keys but sent no masked input, so their masking keys s
/// must be rebuilt), and the consistency signatures of at least t members of U3 over U3.
/// </summary>
public sealed record UnmaskRequest(IReadOnlyList<int> Survivors, IReadOnlyList<int> Dropped, IReadOnlyList<ConsistencySignature> Signatures);
