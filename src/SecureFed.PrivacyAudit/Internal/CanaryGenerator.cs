using SecureFed.Tagger;

namespace SecureFed.PrivacyAudit.Internal;

/// <summary>
/// Synthetic canary sentences "Patient Kabeto was diagnosed with Fabry disease ." whose secret is the patient's
/// made-up name, three consonant-vowel syllables (16 consonants × 5 vowels, so 80³ = 512,000 names), tagged
/// B-&lt;type&gt; (every other token O). The candidate space of one canary is every name in the same sentence; a model
/// that memorised the canary gives its name a higher likelihood of being that entity than names it never saw.
/// </summary>
/// <remarks>
/// Not digits: the tagger's features map every digit to 0 (FeatureHasher.Normalize, shape "d"), so a random numeric
/// identifier is invisible to the model and cannot be memorised at all (a first run with 6-digit identifiers measured
/// exposure 0 for every canary: all candidates tied).
/// </remarks>
internal sealed class CanaryGenerator
{
    /// <summary>Size of the name space (80³).</summary>
    public const int SpaceSize = 80 * 80 * 80;

    private const string Consonants = "bdfghjklmnprstvz";
    private const string Vowels = "aeiou";

    private static readonly string[][] Phrases =
    [
        ["Fabry", "disease"], ["Pompe", "disease"], ["Gaucher", "disease"], ["Krabbe", "disease"], ["Alexander", "disease"],
        ["Canavan", "disease"], ["Menkes", "syndrome"], ["Alstrom", "syndrome"], ["Wolman", "disease"], ["Farber", "disease"],
        ["Schindler", "disease"], ["Sandhoff", "disease"], ["Refsum", "disease"], ["Batten", "disease"], ["Danon", "disease"],
    ];

    private readonly Random _random;
    private readonly string _entityType;
    private readonly HashSet<int> _used = [];

    public CanaryGenerator(int seed, string entityType)
    {
        _random = new Random(seed);
        _entityType = entityType;
    }

    /// <summary>The name of identifier <paramref name="id"/> in [0, <see cref="SpaceSize"/>): distinct ids give distinct names.</summary>
    public static string Name(int id)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(id, SpaceSize);
        Span<char> name = stackalloc char[6];
        for (int s = 0; s < 3; s++)
        {
            int syllable = id % 80;
            id /= 80;
            name[2 * (2 - s)] = Consonants[syllable / 5];
            name[(2 * (2 - s)) + 1] = Vowels[syllable % 5];
        }

        name[0] = char.ToUpperInvariant(name[0]);
        return new string(name);
    }

    /// <summary>A fresh canary: a phrase and a name no earlier canary of this generator used.</summary>
    public (int Id, int Phrase) Next()
    {
        int id;
        do
        {
            id = _random.Next(SpaceSize);
        }
        while (!_used.Add(id));
        return (id, _random.Next(Phrases.Length));
    }

    /// <summary>
    /// <paramref name="count"/> random identifiers for the candidate set, uniform over the space without the
    /// names of inserted canaries (drawn with replacement among themselves, as a uniform sample of the space is).
    /// </summary>
    public int[] Candidates(int count, Random random)
    {
        var ids = new int[count];
        for (int i = 0; i < count; i++)
        {
            int id;
            do
            {
                id = random.Next(SpaceSize);
            }
            while (_used.Contains(id));
            ids[i] = id;
        }

        return ids;
    }

    /// <summary>
    /// The labelled canary sentence for a name and phrase: the name tagged B-&lt;type&gt; (<paramref name="entity"/>) or
    /// O. The audit canaries draw that label at random, independent of the name: the context then cannot predict it,
    /// so only a model that memorised this sentence gives its label a high likelihood (a canary whose label the
    /// template gives away saturates: every name in it is tagged with probability near 1, member or not).
    /// </summary>
    public Sentence Sentence(int id, int phrase, bool entity = true)
    {
        string[] words = Phrases[phrase];
        string[] tokens = ["Patient", Name(id), "was", "diagnosed", "with", .. words, "."];
        string[] tags = [.. tokens.Select((_, i) => i == 1 && entity ? "B-" + _entityType : "O")];
        return new Sentence(tokens, tags);
    }
}
