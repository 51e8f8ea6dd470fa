namespace SecureFed.Aggregator.Persistence;

/// <summary>The server update rule's state as stored with a model version (<see cref="AggregatorStore.LoadServerOptimizer"/>).</summary>
/// <param name="ModelVersion">The model version the state produced (and goes with).</param>
/// <param name="Kind">The rule (momentum or adam).</param>
/// <param name="Steps">Rounds the rule had applied.</param>
/// <param name="First">The first moment.</param>
/// <param name="Second">Adam's second moment, or null for momentum.</param>
public sealed record SavedServerOptimizer(long ModelVersion, string Kind, long Steps, double[] First, double[]? Second);
