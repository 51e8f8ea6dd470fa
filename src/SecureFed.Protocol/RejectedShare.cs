namespace SecureFed.Protocol;

/// <summary>
/// A revealed share the aggregator did not use because it is not on the polynomial of the rebuilt (and verified)
/// secret: <see cref="Responder"/> revealed a wrong share of <see cref="Owner"/>'s secret.
/// </summary>
public sealed record RejectedShare(int Responder, int Owner, RevealedShareKind Kind);
