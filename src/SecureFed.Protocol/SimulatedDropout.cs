namespace SecureFed.Protocol;

/// <summary>When a simulated site stops responding: it sends nothing from <see cref="BeforeStage"/> on.</summary>
/// <param name="Index">The site's protocol index.</param>
/// <param name="BeforeStage">The first stage at which it is silent.</param>
public readonly record struct SimulatedDropout(int Index, ProtocolStage BeforeStage);
