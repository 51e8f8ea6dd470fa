using SecureFed.Experiments;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>The warm start's language-model pretraining on public text (<c>--pretrain-text</c>, <c>--pretrain-epochs</c>).</summary>
public sealed class PretrainTextTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-pretrain-text-").FullName;

    [Fact]
    public void Validate_PublicTextFolders_Accepted()
    {
        ExperimentOptions options = Options([Corpus("gene-text", 5), Corpus("chem-text", 5)]) with { PretrainEpochs = 3 };

        options.Validate();
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    public void Validate_TheEvaluatedCorpus_RefusedHoweverSpelled(string suffix)
    {
        string evaluated = Corpus("ncbi", 5);
        ExperimentOptions options = Options([Corpus("gene-text", 5), evaluated + suffix]) with { DataDirectory = evaluated };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--pretrain-text must not include the evaluated corpus", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ALinkToTheEvaluatedCorpus_Refused()
    {
        string evaluated = Corpus("ncbi", 5);
        string link = Path.Combine(_dir, "ncbi-link");
        Directory.CreateSymbolicLink(link, evaluated);
        ExperimentOptions options = Options([link]) with { DataDirectory = evaluated };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("evaluated corpus", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_AnEvaluatedCorpusOfTheByCorpusSplit_Refused()
    {
        string first = Corpus("ncbi", 5);
        string second = Corpus("gene", 5);
        ExperimentOptions options = Options([second]) with { DataDirectory = null, Corpora = [first, second], Sites = 2, Split = ExperimentSplit.ByCorpus };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("evaluated corpus", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("missing-folder", "does not exist")]
    [InlineData("twice", "twice")]
    [InlineData("empty-name", "empty folder name")]
    [InlineData("no-warm-start", "needs --warm-start")]
    [InlineData("zero-epochs", "--pretrain-epochs must be at least 1")]
    [InlineData("epochs-without-text", "--pretrain-epochs sets the passes over --pretrain-text")]
    [InlineData("two-layers", "one-layer BiLSTM")]
    [InlineData("encoder", "cannot pretrain a model with the pretrained encoder")]
    public void Validate_BadPretraining_RefusedWithAClearMessage(string problem, string message)
    {
        string text = Corpus("gene-text", 5);
        ExperimentOptions options = Options([text]);
        options = problem switch
        {
            "missing-folder" => options with { PretrainTextDirectories = [text, Path.Combine(_dir, "nope")] },
            "twice" => options with { PretrainTextDirectories = [text, text + "/"] },
            "empty-name" => options with { PretrainTextDirectories = [text, ""] },
            "no-warm-start" => options with { WarmStartDirectory = null },
            "zero-epochs" => options with { PretrainEpochs = 0 },
            "epochs-without-text" => options with { PretrainTextDirectories = [], PretrainEpochs = 2 },
            "two-layers" => options with { ConfigName = "default" },
            "encoder" => options with { ConfigName = "tiny-crf-encoder" },
            _ => throw new ArgumentOutOfRangeException(nameof(problem)),
        };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_PretrainText_CachesThePretrainedEncoderAndTheWarmStartAndReusesThem()
    {
        string cache = Path.Combine(_dir, "cache");
        ExperimentOptions options = Options([Corpus("gene-text", 40)]) with
        {
            DataDirectory = Corpus("ncbi", 30),
            WarmStartDirectory = Corpus("chem", 20),
            WarmStartEpochs = 1,
            WarmStartCache = cache,
            Epsilons = [],
            Rounds = 1,
            Seeds = 1,
            Threads = 1,
            RunCentralizedArms = false,
            OutputDirectory = Path.Combine(_dir, "out"),
        };
        var first = new List<string>();
        var second = new List<string>();

        new ExperimentRunner(options, first.Add).Run();
        string[] files = [.. Directory.GetFiles(cache).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];
        new ExperimentRunner(options, second.Add).Run();
        new ExperimentRunner(options with { PretrainEpochs = 2 }, _ => { }).Run();

        Assert.Equal(2, files.Length);
        Assert.StartsWith("pretrained-", files[0], StringComparison.Ordinal);
        Assert.StartsWith("warm-start-", files[1], StringComparison.Ordinal);
        Assert.Contains(first, line => line.Contains("language-model pretraining done", StringComparison.Ordinal));
        Assert.Contains(second, line => line.Contains("public warm start loaded from", StringComparison.Ordinal));
        Assert.DoesNotContain(second, line => line.Contains("language-model pretraining", StringComparison.Ordinal));
        // Another pretraining is another pretrained encoder and another warm start.
        Assert.Equal(4, Directory.GetFiles(cache).Length);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private ExperimentOptions Options(IReadOnlyList<string> text) => new()
    {
        DataDirectory = "/nonexistent/ncbi",
        WarmStartDirectory = "/nonexistent/bc5cdr",
        ConfigName = "tiny-crf",
        PretrainTextDirectories = text,
    };

    /// <summary>A small CoNLL corpus folder with distinct sentences of a few tokens, some tagged Disease.</summary>
    private string Corpus(string name, int sentences)
    {
        string directory = Path.Combine(_dir, name);
        if (Directory.Exists(directory))
        {
            return directory;
        }

        Directory.CreateDirectory(directory);
        foreach ((string file, int offset) in new[] { ("train.tsv", 0), ("dev.tsv", 10_000), ("test.tsv", 20_000) })
        {
            using var writer = new StreamWriter(Path.Combine(directory, file));
            for (int i = 0; i < sentences; i++)
            {
                writer.WriteLine($"patient{offset + i}\tO");
                writer.WriteLine("has\tO");
                writer.WriteLine("severe\tB-Disease");
                writer.WriteLine("anemia\tI-Disease");
                writer.WriteLine(".\tO");
                writer.WriteLine();
            }
        }

        return directory;
    }
}
