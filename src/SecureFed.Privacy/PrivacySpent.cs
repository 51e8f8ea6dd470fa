namespace SecureFed.Privacy;

/// <summary>An (epsilon, delta) guarantee together with the RDP order that gave the smallest epsilon.</summary>
/// <param name="Epsilon">The epsilon at the requested delta; <see cref="double.PositiveInfinity"/> when no order gives a finite bound.</param>
/// <param name="Order">The optimal RDP order alpha; <see cref="double.NaN"/> when undefined.</param>
public readonly record struct PrivacySpent(double Epsilon, double Order);
