namespace SecureFed.Aggregator;

/// <summary>
/// Ends a site's long-poll for the next round when the same site opens a newer one (<see cref="RoundCoordinator"/> keeps
/// one waiting call per site); the service answers it with <c>ABORTED</c>.
/// </summary>
/// <param name="site">The site whose older call is ended.</param>
public sealed class AwaitRoundSupersededException(string site)
    : Exception($"a newer AwaitRound call of site {site} replaced this one (the aggregator keeps one waiting call per site)")
{
    /// <summary>The site whose older call was ended.</summary>
    public string Site { get; } = site;
}
