namespace SecureFed.Tagger;

/// <summary>One tokenised sentence with one IOB2 tag per token (<c>O</c>, <c>B-Type</c>, <c>I-Type</c>).</summary>
/// <param name="Tokens">The tokens, in order.</param>
/// <param name="Tags">The tags; same length as <paramref name="Tokens"/>.</param>
public sealed record Sentence(IReadOnlyList<string> Tokens, IReadOnlyList<string> Tags)
{
    /// <summary>Number of tokens.</summary>
    public int Length => Tokens.Count;

    /// <summary>
    /// The entity types this sentence's annotators marked (null = every type of the model's label set). Under partial
    /// annotation an <c>O</c> token may be an entity of a type nobody marked here, so the softmax head trains it on the
    /// probability of <c>O</c> or any label of an unmarked type (the marginal likelihood of partial labels) instead of
    /// on <c>O</c> alone. Use it only when some other data annotates those types (a federation whose sites annotate
    /// different types); on its own a model would never learn to reject them. The CRF head trains such tokens as
    /// <c>O</c>.
    /// </summary>
    /// <value>The default value is null.</value>
    public IReadOnlyCollection<string>? AnnotatedTypes { get; init; }
}
