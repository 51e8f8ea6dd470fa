namespace SecureFed.Protocol;

/// <summary>The saved state of a <see cref="ServerOptimizer"/>.</summary>
/// <param name="Steps">Rounds applied.</param>
/// <param name="First">First moment (momentum buffer), or null.</param>
/// <param name="Second">Second moment (Adam), or null.</param>
public sealed record ServerOptimizerState(long Steps, double[]? First, double[]? Second);
