using SecureFed.Audit;

namespace SecureFed.Agent;

/// <summary>
/// The federation's model specification (announced by its SHA-256 in every round) differs from this site's
/// (<see cref="AgentOptions.ModelSpec"/>). A configuration error that waiting cannot fix: every round would be declined,
/// so the agent declines the round that showed it and stops (exit code 1) with one line naming both specifications and
/// what to do. Only the federation's aggregator (mutual TLS, its certificate pinned by the kit) can announce a round, and
/// it could as well starve the site of rounds: stopping gives it nothing more.
/// </summary>
public sealed class ModelSpecMismatchException : Exception
{
    /// <summary>Creates the exception for round <paramref name="round"/>, whose announcement named <paramref name="announcedSha256"/>.</summary>
    /// <param name="round">The round declined.</param>
    /// <param name="announcedSha256">The announcement's <c>model_spec_sha256</c> (the aggregator's text, bounded here).</param>
    /// <param name="ownSha256">This site's spec hash.</param>
    /// <param name="own">This site's spec, if the trainer has one.</param>
    /// <param name="specPath">This site's <see cref="AgentOptions.ModelSpec"/> (empty: the default clinical tagger).</param>
    public ModelSpecMismatchException(long round, string announcedSha256, string ownSha256, ModelSpec? own, string specPath)
        : base(Text(round, announcedSha256, ownSha256, own, specPath))
    {
        Round = round;
        AnnouncedSha256 = Shown(announcedSha256);
        OwnSha256 = ownSha256;
    }

    /// <summary>The round declined.</summary>
    public long Round { get; }

    /// <summary>The federation's spec hash, as announced (bounded and cleaned if it is not a SHA-256 in hex).</summary>
    public string AnnouncedSha256 { get; }

    /// <summary>This site's spec hash.</summary>
    public string OwnSha256 { get; }

    private static string Text(long round, string announcedSha256, string ownSha256, ModelSpec? own, string specPath)
    {
        string announced = Shown(announcedSha256);
        string? known = announced.Length == 64 ? ModelSpec.KnownAs(announced) : null;
        string federation = known is null ? $"SHA-256 {announced}" : $"SHA-256 {announced}, the spec of '{known}' with the five clinical types";
        string file = string.IsNullOrEmpty(specPath) ? "SecureFed:ModelSpec not set: the default clinical tagger" : $"SecureFed:ModelSpec {Path.GetFullPath(specPath)}";
        string site = own is null ? $"{file}, SHA-256 {ownSha256}" : $"{file}: {own.Describe()}; SHA-256 {ownSha256}";
        return $"this site's model specification ({site}) differs from the federation's ({federation}), so it cannot take part in any round; " +
            $"the agent declined round {round} and stops. Get the federation's model specification file from its operator (the file the aggregator's " +
            "SecureFed:ModelSpec names, or the command that wrote it), set SecureFed:ModelSpec in this site's agent.json to it, and start the agent again.";
    }

    /// <summary>A SHA-256 in hex as it is; any other text from the aggregator bounded and cleaned (it ends up in logs and the console).</summary>
    private static string Shown(string value)
        => value.Length == 64 && value.All(char.IsAsciiHexDigitLower) ? value : "'" + AuditText.Bound(value, 80) + "'";
}
