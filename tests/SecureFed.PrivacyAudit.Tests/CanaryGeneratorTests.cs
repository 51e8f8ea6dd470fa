using SecureFed.PrivacyAudit.Internal;

namespace SecureFed.PrivacyAudit.Tests;

public sealed class CanaryGeneratorTests
{
    [Fact]
    public void Name_EveryIdentifier_GivesADistinctLetterName()
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int id = 0; id < CanaryGenerator.SpaceSize; id++)
        {
            string name = CanaryGenerator.Name(id);
            Assert.True(name.Length == 6 && char.IsUpper(name[0]) && name.All(char.IsLetter), name);
            names.Add(name.ToLowerInvariant());
        }

        // Distinct even lower-cased (the tagger's features lower-case words); no digits (it maps every digit to 0).
        Assert.Equal(CanaryGenerator.SpaceSize, names.Count);
    }

    [Fact]
    public void Sentence_TagsOnlyTheNameWithTheEntityType()
    {
        var generator = new CanaryGenerator(1, "Disease");
        (int id, int phrase) = generator.Next();

        var sentence = generator.Sentence(id, phrase);

        Assert.Equal(CanaryGenerator.Name(id), sentence.Tokens[1]);
        Assert.Equal("B-Disease", sentence.Tags[1]);
        Assert.All(sentence.Tags.Where((_, i) => i != 1), t => Assert.Equal("O", t));
    }

    [Fact]
    public void Candidates_NeverIncludeAnInsertedCanary()
    {
        var generator = new CanaryGenerator(2, "Disease");
        var inserted = Enumerable.Range(0, 200).Select(_ => generator.Next().Id).ToHashSet();

        int[] candidates = generator.Candidates(20_000, new Random(3));

        Assert.DoesNotContain(candidates, inserted.Contains);
    }
}
