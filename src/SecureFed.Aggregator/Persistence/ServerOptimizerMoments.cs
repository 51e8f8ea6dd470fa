namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// The server update rule's state to save with a model version (<see cref="AggregatorStore.CompleteRoundWithModel(long, long, ReadOnlySpan{byte}, string, IReadOnlyList{string}, ServerOptimizerMoments?)"/>):
/// written from the optimizer's own arrays, never copied whole.
/// </summary>
/// <param name="Kind">The rule (momentum or adam).</param>
/// <param name="Steps">Rounds the rule has applied, this one included.</param>
/// <param name="First">The first moment (one value per parameter).</param>
/// <param name="Second">Adam's second moment (empty for momentum).</param>
public sealed record ServerOptimizerMoments(string Kind, long Steps, ReadOnlyMemory<double> First, ReadOnlyMemory<double> Second);
