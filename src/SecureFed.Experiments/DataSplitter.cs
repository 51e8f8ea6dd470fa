using System.Globalization;
using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>Reads the corpora and divides the training sentences among the sites (iid, skewed or one corpus per site).</summary>
internal static class DataSplitter
{
    /// <summary>Reads the corpus files (each once here) and splits them for <paramref name="seed"/>.</summary>
    public static ExperimentData Load(ExperimentOptions options, int seed) => Load(options, seed, ReadPart);

    /// <summary>Splits the corpora for <paramref name="seed"/>, taking each corpus file from <paramref name="readPart"/> (folder, file, max, seed).</summary>
    public static ExperimentData Load(ExperimentOptions options, int seed, Func<string, string, int, int, IReadOnlyList<Sentence>> readPart)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(readPart);
        return options.Split == ExperimentSplit.ByCorpus ? ByCorpus(options, seed, readPart) : Shares(options, seed, readPart);
    }

    /// <summary>Reads one file of a corpus folder; errors name the folder and file.</summary>
    /// <exception cref="InputDataException">The file is missing, a folder, malformed or holds no sentence: a problem with the corpus folder the user named (a usage error, as the demo's --data).</exception>
    public static IReadOnlyList<Sentence> ReadPart(string directory, string file, int max, int seed) => Sample(ReadFile(directory, file), max, seed);

    /// <summary>Every sentence of one file of a corpus folder; errors name the folder and file.</summary>
    /// <exception cref="InputDataException">As <see cref="ReadPart"/>.</exception>
    public static Sentence[] ReadFile(string directory, string file) => ReadFile(directory, file, new EntityTypeSpellings());

    /// <summary>As <see cref="ReadFile(string, string)"/>, the entity types' spellings checked against those of the other files read with <paramref name="spellings"/>.</summary>
    /// <exception cref="InputDataException">As <see cref="ReadPart"/>, or a type spelled with other letter case than where it was first met.</exception>
    public static Sentence[] ReadFile(string directory, string file, EntityTypeSpellings spellings)
    {
        string path = Path.Combine(directory, file);
        if (!File.Exists(path))
        {
            throw new InputDataException(Directory.Exists(path)
                ? $"{directory} is not a CoNLL corpus folder: {file} is a folder, not a file (need train.tsv, dev.tsv, test.tsv)."
                : $"{directory} is not a CoNLL corpus folder: {file} is missing (need train.tsv, dev.tsv, test.tsv).");
        }

        Sentence[] sentences = [.. ConllReader.ReadFile(path, spellings).Where(s => s.Length > 0)];
        return sentences.Length == 0 ? throw new InputDataException($"{path} holds no sentences.") : sentences;
    }

    /// <summary>
    /// At most <paramref name="max"/> of <paramref name="sentences"/> (0 = all): a seeded random subset, not the first lines
    /// (corpora are often ordered by document).
    /// </summary>
    public static IReadOnlyList<Sentence> Sample(IReadOnlyList<Sentence> sentences, int max, int seed) =>
        max > 0 && sentences.Count > max ? [.. Shuffle(sentences, seed).Take(max)] : sentences;

    public static IReadOnlyList<string> TypesOf(IEnumerable<Sentence> sentences) =>
        [.. sentences.SelectMany(s => s.Tags).Where(t => t.Length > 2 && t[1] == '-').Select(t => t[2..]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];

    public static T[] Shuffle<T>(IReadOnlyList<T> items, int seed)
    {
        T[] copy = [.. items];
        new Random(seed).Shuffle(copy);
        return copy;
    }

    private static ExperimentData Shares(ExperimentOptions options, int seed, Func<string, string, int, int, IReadOnlyList<Sentence>> readPart)
    {
        string dir = options.DataDirectory!;
        IReadOnlyList<Sentence> train = readPart(dir, "train.tsv", options.MaxTrainSentences, seed);
        IReadOnlyList<Sentence> dev = readPart(dir, "dev.tsv", options.MaxEvalSentences, seed);
        IReadOnlyList<Sentence> test = readPart(dir, "test.tsv", options.MaxEvalSentences, seed);
        if (train.Count < options.Sites)
        {
            throw new InputDataException($"{dir}: {train.Count} training sentences cannot be split across {options.Sites} sites.");
        }

        Sentence[] shuffled = Shuffle(train, seed);
        IReadOnlyList<double> shares = options.Split == ExperimentSplit.Skewed
            ? options.EffectiveSkewShares()
            : [.. Enumerable.Repeat(1.0 / options.Sites, options.Sites)];

        var sites = new List<SiteData>();
        int start = 0;
        double cumulative = 0;
        string corpus = Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/'));
        for (int i = 0; i < options.Sites; i++)
        {
            cumulative += shares[i];
            int end = i == options.Sites - 1 ? shuffled.Length : Math.Max(start + 1, (int)Math.Round(cumulative * shuffled.Length));
            Sentence[] part = shuffled[start..end];
            string share = (100 * shares[i]).ToString("0.#", CultureInfo.InvariantCulture);
            sites.Add(new SiteData($"site-{i + 1}", $"{corpus} {share}% ({part.Length} sentences)", part, TypesOf(part)));
            start = end;
        }

        IReadOnlyList<string> types = TypesOf(train.Concat(dev).Concat(test));
        string split = options.Split == ExperimentSplit.Skewed ? "skewed" : "iid";
        string description = string.Create(CultureInfo.InvariantCulture,
            $"{corpus}: {train.Count} training sentences split {split} across {options.Sites} sites ({string.Join(" / ", sites.Select(s => s.Train.Count))}); dev {dev.Count}, test {test.Count} (held out)");
        return new ExperimentData(sites, dev, test, types, description);
    }

    private static ExperimentData ByCorpus(ExperimentOptions options, int seed, Func<string, string, int, int, IReadOnlyList<Sentence>> readPart)
    {
        var sites = new List<SiteData>();
        var dev = new List<Sentence>();
        var test = new List<Sentence>();
        for (int i = 0; i < options.Corpora.Count; i++)
        {
            string dir = options.Corpora[i];
            string corpus = Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/'));
            IReadOnlyList<Sentence> train = readPart(dir, "train.tsv", options.MaxTrainSentences, seed);
            if (options.PartialAnnotation)
            {
                // Each corpus marks only its own types: an O token may be an entity of a type it does not annotate.
                IReadOnlyList<string> annotated = TypesOf(train);
                train = [.. train.Select(s => s with { AnnotatedTypes = annotated })];
            }

            dev.AddRange(readPart(dir, "dev.tsv", options.MaxEvalSentences, seed));
            test.AddRange(readPart(dir, "test.tsv", options.MaxEvalSentences, seed));
            sites.Add(new SiteData($"site-{i + 1}", $"{corpus} ({train.Count} sentences)", train, TypesOf(train)));
        }

        IReadOnlyList<string> types = [.. sites.SelectMany(s => s.EntityTypes).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        string description = $"by corpus: {string.Join("; ", sites.Select(s => $"{s.Name} = {s.Source} labels {string.Join("/", s.EntityTypes)}"))}; dev {dev.Count}, test {test.Count} (union of the corpora's held-out sets)"
            + (options.PartialAnnotation ? "; partial annotation: an O token may be any type its corpus does not annotate" : "; every unannotated type trained as O");
        return new ExperimentData(sites, dev, test, types, description);
    }
}
