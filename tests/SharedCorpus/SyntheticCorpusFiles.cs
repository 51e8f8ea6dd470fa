using SecureFed.Tagger;

namespace SecureFed.Testing;

/// <summary>A small synthetic CoNLL corpus folder (train.tsv, dev.tsv, test.tsv) for the experiment and privacy-audit tests.</summary>
internal static class SyntheticCorpusFiles
{
    /// <summary>Writes <paramref name="train"/> training and <paramref name="eval"/> dev and test sentences of the first synthetic site profile.</summary>
    /// <returns><paramref name="directory"/>.</returns>
    public static string Write(string directory, int train, int eval)
    {
        Directory.CreateDirectory(directory);
        SiteProfile profile = SyntheticClinicalCorpus.Profiles[0];
        WriteFile(Path.Combine(directory, "train.tsv"), SyntheticClinicalCorpus.Generate(profile, train, 1));
        WriteFile(Path.Combine(directory, "dev.tsv"), SyntheticClinicalCorpus.Generate(profile, eval, 2));
        WriteFile(Path.Combine(directory, "test.tsv"), SyntheticClinicalCorpus.Generate(profile, eval, 3));
        return directory;
    }

    private static void WriteFile(string path, IReadOnlyList<Sentence> sentences)
    {
        using var writer = new StreamWriter(path);
        foreach (Sentence sentence in sentences)
        {
            for (int i = 0; i < sentence.Length; i++)
            {
                writer.Write(sentence.Tokens[i]);
                writer.Write('\t');
                writer.WriteLine(sentence.Tags[i]);
            }

            writer.WriteLine();
        }
    }
}
