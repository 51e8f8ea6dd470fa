namespace SecureFed.Protocol;

/// <summary>
/// A contributor's own declaration, sent outside the masked sum, of whether it put the evaluation flag 1 (it scored the
/// round's starting model) into its input (docs/PROTOCOL.md, "Federated evaluation"). The aggregator publishes the summed
/// counts only when the contributors that declared "scored" are exactly as many as the decoded flag says, so one site
/// cannot inflate the flag to make another site's counts pass for a federation's.
/// </summary>
/// <param name="Site">The contributor's name.</param>
/// <param name="Scored">What it declared; null when it sent no declaration (an older agent, or it left after its masked input), which counts as not scored.</param>
public sealed record ScoringDeclaration(string Site, bool? Scored);
