namespace SecureFed.Tagger.Tests;

/// <summary>Reads the real corpora in ../shared/data when present; skips cleanly otherwise.</summary>
public sealed class SharedDataTests
{
    internal static string? FindSharedData()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "SecureFed.sln")))
        {
            dir = dir.Parent;
        }

        if (dir?.Parent is null)
        {
            return null;
        }

        string data = Path.Combine(dir.Parent.FullName, "shared", "data");
        return Directory.Exists(data) ? data : null;
    }

    [Fact]
    public void ReadFile_NcbiDiseaseSplits_MatchDocumentedCounts()
    {
        string? data = FindSharedData();
        if (data is null || !File.Exists(Path.Combine(data, "ncbi-disease", "dev.tsv")))
        {
            Console.WriteLine("skipped: ../shared/data/ncbi-disease not found");
            return;
        }

        // Counts documented in shared/data/SOURCES.md (dev: 923 sentences, 23969 tokens, 787 mentions).
        var dev = ConllReader.ReadFile(Path.Combine(data, "ncbi-disease", "dev.tsv")).ToList();
        Assert.Equal(923, dev.Count);
        Assert.Equal(23969, dev.Sum(s => s.Length));
        var self = TaggerEvaluator.Score(dev, [.. dev.Select(s => s.Tags)]);
        Assert.Equal(787, self.Overall.Gold);
        Assert.Equal(1.0, self.F1);
    }

    [Fact]
    public void ReadFile_Bc5cdrTest_HasTwoTypes()
    {
        string? data = FindSharedData();
        if (data is null || !File.Exists(Path.Combine(data, "bc5cdr", "test.tsv")))
        {
            Console.WriteLine("skipped: ../shared/data/bc5cdr not found");
            return;
        }

        var test = ConllReader.ReadFile(Path.Combine(data, "bc5cdr", "test.tsv")).ToList();
        var labels = LabelSet.FromSentences(test, includeClinicalTypes: false);

        Assert.Equal(new[] { "Chemical", "Disease" }, labels.EntityTypes);
        Assert.Equal(4797, test.Count);
    }
}
