using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>
/// Stage 0 of <c>securefed experiment</c> (and of <c>privacy audit</c>, through <see cref="ExperimentRunner.LoadSplit"/>):
/// every corpus file the options name, read and parsed once before any model trains: the evaluated corpora
/// (<c>--data</c> or <c>--corpora</c>: train, dev, test), the splits of <c>--warm-start</c> the warm start trains on, and
/// every split of <c>--pretrain-text</c> and <c>--distill-text</c>. A missing or malformed file then fails the run at once
/// (<see cref="InputDataException"/>: the file and line) instead of when its stage comes, after arms have trained for
/// hours (the distillation text was read after the first federated arm, the pretraining text when a seed's pretrained
/// encoder was not in the cache, the corpora again for every seed). The stages take their sentences from here; the
/// public text of <c>--pretrain-text</c> and <c>--distill-text</c> is kept as tokens only (its labels are ignored).
/// </summary>
internal sealed class ExperimentInputs
{
    /// <summary>The files of a corpus folder, in the order they are read.</summary>
    public static readonly IReadOnlyList<string> Splits = ["train.tsv", "dev.tsv", "test.tsv"];

    private readonly Dictionary<string, Sentence[]> _labelled = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<string>[]> _text = new(StringComparer.Ordinal);

    // One spelling per entity type across every labelled file (the evaluated corpora and the warm start): the sites'
    // types are united, and the warm start keeps a type by its exact name, so B-disease in one file next to B-Disease in
    // another made two types (or turned the public mentions to O), silently.
    private readonly EntityTypeSpellings _spellings = new();

    private ExperimentInputs()
    {
    }

    /// <summary>Number of files read.</summary>
    public int FileCount => _labelled.Count + _text.Count;

    /// <summary>Reads every corpus file <paramref name="options"/> make a run read, in the order the stages use them.</summary>
    /// <exception cref="InputDataException">A file is missing, malformed, not UTF-8 or holds no sentence; the message names it (and the line).</exception>
    public static ExperimentInputs Read(ExperimentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var inputs = new ExperimentInputs();
        IEnumerable<string> evaluated = options.Split == ExperimentSplit.ByCorpus ? options.Corpora : [options.DataDirectory!];
        foreach (string directory in evaluated)
        {
            inputs.ReadLabelled(directory, Splits);
        }

        if (options.WarmStartDirectory is string warmStart)
        {
            inputs.ReadLabelled(warmStart, WarmStartSplits(options));
        }

        inputs.ReadText(options.PretrainTextDirectories);
        inputs.ReadText(options.DistillTextDirectories);
        return inputs;
    }

    /// <summary>Reads every split of public text folders (tokens only).</summary>
    public static ExperimentInputs ReadPublicText(IReadOnlyList<string> directories)
    {
        ArgumentNullException.ThrowIfNull(directories);
        var inputs = new ExperimentInputs();
        inputs.ReadText(directories);
        return inputs;
    }

    /// <summary>The files of <c>--warm-start</c> the public warm start trains on (<c>--warm-start-splits</c>).</summary>
    public static IReadOnlyList<string> WarmStartSplits(ExperimentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.WarmStartAllSplits ? Splits : ["train.tsv"];
    }

    /// <summary>The sentences of one labelled file read here, at most <paramref name="max"/> of them (0 = all) drawn with <paramref name="seed"/>.</summary>
    /// <exception cref="InvalidOperationException">The file was not read in stage 0 (a bug: <see cref="Read"/> lists every file a stage uses).</exception>
    public IReadOnlyList<Sentence> Part(string directory, string file, int max, int seed) =>
        DataSplitter.Sample(_labelled.TryGetValue(Key(directory, file), out Sentence[]? sentences) ? sentences : throw NotRead(directory, file), max, seed);

    /// <summary>The tokens of every sentence of every split of <paramref name="directories"/>, in folder and split order.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Text(IEnumerable<string> directories) =>
        [.. directories.SelectMany(directory => Splits.Select(split => (directory, split))).SelectMany(part => TextOf(part.directory, part.split))];

    private IEnumerable<IReadOnlyList<string>> TextOf(string directory, string file)
    {
        string key = Key(directory, file);
        if (_labelled.TryGetValue(key, out Sentence[]? sentences))
        {
            return sentences.Select(s => s.Tokens);
        }

        return _text.TryGetValue(key, out IReadOnlyList<string>[]? tokens) ? tokens : throw NotRead(directory, file);
    }

    private void ReadLabelled(string directory, IReadOnlyList<string> files)
    {
        foreach (string file in files)
        {
            string key = Key(directory, file);
            if (!_labelled.ContainsKey(key))
            {
                _labelled[key] = DataSplitter.ReadFile(directory, file, _spellings);
            }
        }
    }

    private void ReadText(IReadOnlyList<string> directories)
    {
        foreach (string directory in directories)
        {
            foreach (string file in Splits)
            {
                string key = Key(directory, file);
                if (!_labelled.ContainsKey(key) && !_text.ContainsKey(key))
                {
                    _text[key] = [.. DataSplitter.ReadFile(directory, file, EntityTypeSpellings.Unchecked).Select(s => s.Tokens)]; // labels ignored
                }
            }
        }
    }

    private static string Key(string directory, string file) => Path.Combine(directory, file);

    private static InvalidOperationException NotRead(string directory, string file) =>
        new($"{Path.Combine(directory, file)} was not read before training (stage 0 must list every corpus file a stage uses).");
}
