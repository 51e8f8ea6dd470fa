namespace SecureFed.Cluster.Tests;

/// <summary>One agent's endpoints (in failover order) and the highest protocol version it asks for (3: a version-3 agent).</summary>
internal sealed record AgentSetup(IReadOnlyList<Uri> Endpoints, uint SpeaksProtocolVersion);
