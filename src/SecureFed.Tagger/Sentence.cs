namespace SecureFed.Tagger;

/// <summary>One tokenised sentence with one IOB2 tag per token (<c>O</c>, <c>B-Type</c>, <c>I-Type</c>).</summary>
/// <param name="Tokens">The tokens, in order.</param>
/// <param name="Tags">The tags; same length as <paramref name="Tokens"/>.</param>
public sealed record Sentence(IReadOnlyList<string> Tokens, IReadOnlyList<string> Tags)
{
    /// <summary>Number of tokens.</summary>
    public int Length => Tokens.Count;
}
