using SecureFed.Audit;

namespace SecureFed.Agent;

/// <summary>
/// What an agent says when the federation's model specification (announced by its SHA-256 in every round) differs from
/// this site's (<see cref="AgentOptions.ModelSpec"/>): both specifications in words and what to do on either side. The
/// agent declines every such round (the aggregator knows at once) and logs this once per announced specification; it
/// does not stop, because the wrong one may be the aggregator's (started once with another spec, then fixed), and then
/// the agent takes part again without a restart at every site.
/// </summary>
public static class ModelSpecMismatch
{
    /// <summary>The explanation for an announcement that named <paramref name="announcedSha256"/>.</summary>
    /// <param name="announcedSha256">The announcement's <c>model_spec_sha256</c> (the aggregator's text, bounded here).</param>
    /// <param name="ownSha256">This site's spec hash.</param>
    /// <param name="own">This site's spec, if the trainer has one.</param>
    /// <param name="specPath">This site's <see cref="AgentOptions.ModelSpec"/> (empty: the default clinical tagger).</param>
    /// <returns>One paragraph for the agent's log.</returns>
    public static string Explain(string announcedSha256, string ownSha256, ModelSpec? own, string specPath)
    {
        ArgumentNullException.ThrowIfNull(announcedSha256);
        ArgumentNullException.ThrowIfNull(ownSha256);
        ArgumentNullException.ThrowIfNull(specPath);
        string announced = Shown(announcedSha256);
        string? known = announced.Length == 64 ? ModelSpec.KnownAs(announced) : null;
        string federation = known is null ? $"SHA-256 {announced}" : $"SHA-256 {announced}, the spec of '{known}' with the five clinical types";
        string file = string.IsNullOrEmpty(specPath) ? "SecureFed:ModelSpec not set: the default clinical tagger" : $"SecureFed:ModelSpec {Path.GetFullPath(specPath)}";
        string site = own is null ? $"{file}, SHA-256 {ownSha256}" : $"{file}: {own.Describe()}; SHA-256 {ownSha256}";
        return $"this site's model specification ({site}) differs from the one the aggregator announces ({federation}); the agent declines every round " +
            "until they match. If the federation uses that model, get its model specification file from the aggregator's operator (the file the " +
            "aggregator's SecureFed:ModelSpec names, or the command that wrote it), set SecureFed:ModelSpec in this site's agent.json to it and restart " +
            "the agent; if the aggregator was started with the wrong one, its operator restarts it with the federation's, and this agent takes part again by itself.";
    }

    /// <summary>A SHA-256 in hex as it is; any other text from the aggregator bounded and cleaned (it ends up in logs and the console).</summary>
    /// <param name="value">The announced hash.</param>
    /// <returns>The text to show.</returns>
    public static string Shown(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.Length == 64 && value.All(char.IsAsciiHexDigitLower) ? value : "'" + AuditText.Bound(value, 80) + "'";
    }
}
