using System.Globalization;
using SecureFed.Tagger;

namespace SecureFed.PrivacyAudit.Internal;

/// <summary>
/// Synthetic canary sentences "Patient 042917 was diagnosed with Fabry disease ." whose secret is the 6-digit
/// identifier, tagged B-&lt;type&gt; (every other token O). The candidate space of one canary is the 10⁶ identifiers in
/// the same sentence; a model that memorised the canary gives its identifier a higher likelihood of being that entity
/// than identifiers it never saw.
/// </summary>
internal sealed class CanaryGenerator
{
    /// <summary>Size of the identifier space (000000–999999).</summary>
    public const int SpaceSize = 1_000_000;

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

    /// <summary>A fresh canary: a phrase and an identifier no earlier canary of this generator used.</summary>
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
    /// identifiers of inserted canaries (drawn with replacement among themselves, as a uniform sample of the space is).
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

    /// <summary>The labelled canary sentence for an identifier and phrase.</summary>
    public Sentence Sentence(int id, int phrase)
    {
        string[] words = Phrases[phrase];
        string[] tokens = ["Patient", id.ToString("D6", CultureInfo.InvariantCulture), "was", "diagnosed", "with", .. words, "."];
        string[] tags = [.. tokens.Select((_, i) => i == 1 ? "B-" + _entityType : "O")];
        return new Sentence(tokens, tags);
    }
}
