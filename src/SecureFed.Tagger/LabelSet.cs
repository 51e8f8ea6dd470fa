namespace SecureFed.Tagger;

/// <summary>
/// The IOB2 label inventory of a tagger: <c>O</c> first, then <c>B-T</c>, <c>I-T</c> for each entity type
/// <c>T</c> in ordinal order. Deterministic, so every site derives the same head shape from the same types.
/// </summary>
public sealed class LabelSet
{
    private readonly Dictionary<string, int> _index;

    private LabelSet(string[] types)
    {
        EntityTypes = types;
        var labels = new List<string>(1 + (2 * types.Length)) { "O" };
        foreach (string type in types)
        {
            labels.Add("B-" + type);
            labels.Add("I-" + type);
        }

        Labels = labels;
        _index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < labels.Count; i++)
        {
            _index[labels[i]] = i;
        }
    }

    /// <summary>The product's clinical entity types: Disease, Symptom, Drug, Procedure, Genetics.</summary>
    public static IReadOnlyList<string> ClinicalTypes { get; } = ["Disease", "Symptom", "Drug", "Procedure", "Genetics"];

    /// <summary>The labels; index 0 is <c>O</c>.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>Number of labels.</summary>
    public int Count => Labels.Count;

    /// <summary>The entity types, sorted ordinally.</summary>
    public IReadOnlyList<string> EntityTypes { get; }

    /// <summary>Creates the label set for the given entity types (duplicates removed, sorted ordinally).</summary>
    /// <param name="entityTypes">Entity type names (non-empty, no whitespace).</param>
    /// <returns>The label set.</returns>
    public static LabelSet Create(IEnumerable<string> entityTypes)
    {
        ArgumentNullException.ThrowIfNull(entityTypes);
        var types = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string type in entityTypes)
        {
            if (string.IsNullOrWhiteSpace(type) || type.Any(char.IsWhiteSpace))
            {
                throw new ArgumentException($"invalid entity type \"{type}\" (must be non-empty without whitespace)", nameof(entityTypes));
            }

            if (type == "O" || type.StartsWith("B-", StringComparison.Ordinal) || type.StartsWith("I-", StringComparison.Ordinal))
            {
                // "O" is the label of tokens outside any mention, and B-/I- are the BIO prefixes the labels get: a type
                // "B-Disease" would give the labels "B-B-Disease" and "I-B-Disease", which no corpus uses.
                throw new ArgumentException($"invalid entity type \"{type}\": give the type's name (e.g. Disease), not a BIO label (O, B-…, I-…)", nameof(entityTypes));
            }

            types.Add(type);
        }

        return new LabelSet([.. types]);
    }

    /// <summary>The entity types found in <paramref name="sentences"/>, optionally united with <see cref="ClinicalTypes"/>.</summary>
    /// <param name="sentences">Annotated sentences.</param>
    /// <param name="includeClinicalTypes">Also include the five clinical types (keeps the model shape identical across sites).</param>
    /// <returns>The label set.</returns>
    public static LabelSet FromSentences(IEnumerable<Sentence> sentences, bool includeClinicalTypes = true)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        var types = new HashSet<string>(StringComparer.Ordinal);
        if (includeClinicalTypes)
        {
            types.UnionWith(ClinicalTypes);
        }

        foreach (Sentence sentence in sentences)
        {
            foreach (string tag in sentence.Tags)
            {
                if (tag.Length > 2 && tag[1] == '-')
                {
                    types.Add(tag[2..]);
                }
            }
        }

        return Create(types);
    }

    /// <summary>Index of <paramref name="label"/>, or -1 when it is not in the set.</summary>
    /// <param name="label">A label such as <c>B-Disease</c>.</param>
    /// <returns>The index or -1.</returns>
    public int IndexOf(string label)
    {
        ArgumentNullException.ThrowIfNull(label);
        return _index.TryGetValue(label, out int i) ? i : -1;
    }
}
