namespace SecureFed.Tagger.Tests;

/// <summary>
/// Entity types that differ only in letter case (B-Disease and B-disease) are refused where CoNLL input is read, naming
/// the file, the lines where each spelling was first met and both spellings: they became two entity types, silently.
/// </summary>
public sealed class EntityTypeSpellingsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-type-case-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ReadFile_TypeSpelledWithOtherCaseLaterInTheFile_RefusedNamingFileLinesAndBothSpellings()
    {
        string path = Write("train.tsv", "Ataxia\tB-Disease\nis\tO\n\nfever\tO\nand\tO\nanemia\tB-disease\nwith\tO\n");

        var error = Assert.Throws<InputDataException>(() => ConllReader.ReadFile(path).ToList());

        Assert.Equal($"{path}:6: entity type \"disease\" (B-disease) differs only in letter case from \"Disease\" (first at line 1); they would be two entity types. Spell each type one way in the data (nothing is renamed).", error.Message);
    }

    [Fact]
    public void ReadFile_TrainAndDevShareTheSpellings_DevWithOtherCaseRefusedNamingBothFiles()
    {
        string train = Write("train.tsv", "x\tO\nAtaxia\tB-Chemical\n");
        string dev = Write("dev.tsv", "y\tO\n\nz\tO\naspirin\tI-CHEMICAL\n");
        var spellings = new EntityTypeSpellings();

        _ = ConllReader.ReadFile(train, spellings).ToList();
        var error = Assert.Throws<InputDataException>(() => ConllReader.ReadFile(dev, spellings).ToList());

        Assert.StartsWith($"{dev}:4: entity type \"CHEMICAL\" (I-CHEMICAL) differs only in letter case from \"Chemical\" (first at {train}:2);", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadFile_UncheckedTable_TypeSpelledWithOtherCaseRead()
    {
        string path = Write("text.tsv", "Ataxia\tB-Disease\n\nanemia\tB-disease\n");

        List<Sentence> sentences = [.. ConllReader.ReadFile(path, EntityTypeSpellings.Unchecked)];

        Assert.Equal(["B-Disease", "B-disease"], sentences.SelectMany(s => s.Tags));
    }

    [Fact]
    public void ReadFile_OneSpellingPerType_ReadsEveryType()
    {
        string path = Write("train.tsv", "a\tB-Disease\nb\tI-Disease\n\nc\tB-GENE\nd\tB-Disease\ne\tB\n");

        List<Sentence> sentences = [.. ConllReader.ReadFile(path, new EntityTypeSpellings())];

        Assert.Equal(new[] { "Disease", "GENE", "Genetics", "Drug", "Procedure", "Symptom", ConllReader.UntypedEntity }.Order(StringComparer.Ordinal),
            LabelSet.FromSentences(sentences).EntityTypes);
    }

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }
}
