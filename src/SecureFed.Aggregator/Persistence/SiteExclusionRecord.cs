namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// A site found at fault, as the round store keeps it (<see cref="AggregatorStore.SaveExclusions"/>): what the
/// coordinator needs after a restart to go on excluding it and to double its next exclusion (docs/PROTOCOL.md §3, "Blame").
/// </summary>
/// <param name="Site">The site's name.</param>
/// <param name="AttemptsLeft">The round attempts it still sits out; 0 once it served its exclusion (the blame count stays).</param>
/// <param name="BlameCount">How many distinct round attempts blamed it (1 for the first).</param>
/// <param name="LastBlamedRound">The round attempt that blamed it last.</param>
public sealed record SiteExclusionRecord(string Site, long AttemptsLeft, long BlameCount, long LastBlamedRound);
