namespace SecureFed.Aggregator;

/// <summary>What became of a slice upload (<see cref="IRoundServer.AcceptMaskedInputSliceAsync"/>): taken (fresh or an identical retry) or refused.</summary>
/// <param name="Fresh">True when the slice was taken for the first time; false for an identical retry or a refusal.</param>
/// <param name="Refusal">Why the upload was refused (nothing of it was kept), or null.</param>
public sealed record SliceUploadOutcome(bool Fresh, SliceUploadRefusal? Refusal);
