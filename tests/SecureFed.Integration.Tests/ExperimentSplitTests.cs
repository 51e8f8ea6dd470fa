using SecureFed.Experiments;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>How <c>securefed experiment</c> divides the data: shares, disjointness, labels per site.</summary>
public sealed class ExperimentSplitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-experiment-split-").FullName;

    [Fact]
    public void Load_Skewed603010_SitesGetThoseSharesOfDisjointSentences()
    {
        string corpus = Corpus("a", 200, ["Disease"]);
        var options = new ExperimentOptions { DataDirectory = corpus, Sites = 3, Split = ExperimentSplit.Skewed };

        ExperimentData data = DataSplitter.Load(options, seed: 1);

        Assert.Equal([120, 60, 20], data.Sites.Select(s => s.Train.Count));
        Assert.Equal(200, data.Sites.SelectMany(s => s.Train).Select(s => s.Tokens[0]).Distinct().Count());
        Assert.Equal(200, data.Pooled.Count);
    }

    [Fact]
    public void Load_IidDifferentSeeds_RedrawsTheSplit()
    {
        string corpus = Corpus("a", 90, ["Disease"]);
        var options = new ExperimentOptions { DataDirectory = corpus, Sites = 3 };

        ExperimentData one = DataSplitter.Load(options, seed: 1);
        ExperimentData again = DataSplitter.Load(options, seed: 1);
        ExperimentData two = DataSplitter.Load(options, seed: 2);

        Assert.Equal([30, 30, 30], one.Sites.Select(s => s.Train.Count));
        Assert.Equal(one.Sites[0].Train.Select(s => s.Tokens[0]), again.Sites[0].Train.Select(s => s.Tokens[0]));
        Assert.NotEqual(one.Sites[0].Train.Select(s => s.Tokens[0]), two.Sites[0].Train.Select(s => s.Tokens[0]));
    }

    [Fact]
    public void Load_ByCorpus_EachSiteOneCorpusWithItsOwnLabelsAndTheUnionIsShared()
    {
        string first = Corpus("ncbi-like", 40, ["Disease"]);
        string second = Corpus("gene-like", 30, ["Gene"]);
        var options = new ExperimentOptions { Corpora = [first, second], Sites = 2, Split = ExperimentSplit.ByCorpus };

        ExperimentData data = DataSplitter.Load(options, seed: 1);

        Assert.Equal(["Disease"], data.Sites[0].EntityTypes);
        Assert.Equal(["Gene"], data.Sites[1].EntityTypes);
        Assert.Equal(["Disease", "Gene"], data.EntityTypes);
        Assert.Equal([40, 30], data.Sites.Select(s => s.Train.Count));
        Assert.Equal(2 * 10, data.Test.Count);
        Assert.Contains("site-2 = gene-like", data.Description, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Load_ByCorpus_TrainSentencesCarryTheirCorpusTypesOnlyUnderPartialAnnotation(bool partial)
    {
        string first = Corpus("disease-only", 12, ["Disease"]);
        string second = Corpus("gene-only", 8, ["Gene"]);
        var options = new ExperimentOptions { Corpora = [first, second], Sites = 2, Split = ExperimentSplit.ByCorpus, PartialAnnotation = partial };

        ExperimentData data = DataSplitter.Load(options, seed: 1);

        Assert.All(data.Sites[0].Train, s => Assert.Equal(partial ? ["Disease"] : null, s.AnnotatedTypes));
        Assert.All(data.Sites[1].Train, s => Assert.Equal(partial ? ["Gene"] : null, s.AnnotatedTypes));
        Assert.All(data.Test, s => Assert.Null(s.AnnotatedTypes));
        Assert.Contains(partial ? "partial annotation" : "trained as O", data.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_WarmStartIsTheEvaluatedCorpus_Refused()
    {
        string corpus = Corpus("a", 10, ["Disease"]);
        var options = new ExperimentOptions { DataDirectory = corpus, WarmStartDirectory = corpus };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--warm-start", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ConfigNeitherNameNorFile_RefusedNamingTheOption()
    {
        var options = new ExperimentOptions { DataDirectory = Corpus("c", 10, ["Disease"]), ConfigName = "tiny-crf.json" };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.StartsWith("--config", error.Message, StringComparison.Ordinal);
        Assert.Contains("tiny-crf.json", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_DpPreconditionWithoutPublicCorpus_Refused()
    {
        var options = new ExperimentOptions { DataDirectory = Corpus("b", 10, ["Disease"]), DpPrecondition = true };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--dp-precondition", error.Message, StringComparison.Ordinal);
        Assert.Contains("--warm-start", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_PerTensorWithoutDpPrecondition_Refused()
    {
        var options = new ExperimentOptions { DataDirectory = Corpus("d", 10, ["Disease"]), DpPreconditionPerTensor = true };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--dp-precondition-per-tensor", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ZeroWarmStartEpochsWithoutDpPrecondition_Refused()
    {
        var options = new ExperimentOptions { DataDirectory = Corpus("e", 10, ["Disease"]), WarmStartDirectory = Corpus("f", 10, ["Disease"]), WarmStartEpochs = 0 };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--warm-start-epochs", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sgd", "avg, momentum or adam")]
    [InlineData("adam", "τ")]
    public void Validate_ServerOptimizerBad_NamesIt(string kind, string named)
    {
        var options = new ExperimentOptions { DataDirectory = Corpus("g", 10, ["Disease"]), ServerOptimizerName = kind, ServerTau = 0 };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("avg", 0.0, 1.0, "needs --server-optimizer adam")]
    [InlineData("adam", 0.01, 1.0, "--lr-decay")]
    [InlineData("adam", 0.0, 0.0, "noise floor")]
    public void Validate_ServerNoiseCorrectionMisused_NamesWhy(string kind, double lrDecay, double floor, string named)
    {
        var options = new ExperimentOptions { DataDirectory = Corpus("n", 10, ["Disease"]), ServerOptimizerName = kind, ServerNoiseCorrection = true, LearningRateDecay = lrDecay, ServerNoiseFloor = floor };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void Validate_DpPreconditionFloorOutOfRange_Refused(double floor)
    {
        var options = new ExperimentOptions { DataDirectory = Corpus("c", 10, ["Disease"]), DpPreconditionFloor = floor };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--dp-precondition-floor", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-0.01, 2.0)]
    [InlineData(double.NaN, 2.0)]
    [InlineData(0.5, 2.0)] // lr × λ = 1: every step would zero the weights
    public void Validate_DpWeightDecayOutOfRange_NamesItAndTheLearningRate(double weightDecay, double dpLr)
    {
        var options = new ExperimentOptions { DataDirectory = Corpus("w", 10, ["Disease"]), DpWeightDecay = weightDecay, DpLearningRate = dpLr };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--dp-weight-decay", error.Message, StringComparison.Ordinal);
        Assert.Contains("--dp-lr", error.Message, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private string Corpus(string name, int train, string[] types)
    {
        string directory = Path.Combine(_dir, name);
        Directory.CreateDirectory(directory);
        Write(Path.Combine(directory, "train.tsv"), train, types, 0);
        Write(Path.Combine(directory, "dev.tsv"), 10, types, 100_000);
        Write(Path.Combine(directory, "test.tsv"), 10, types, 200_000);
        return directory;
    }

    private static void Write(string path, int count, string[] types, int offset)
    {
        using var writer = new StreamWriter(path);
        for (int i = 0; i < count; i++)
        {
            // Distinct sentences: the index is a token.
            writer.WriteLine($"w{offset + i}\tO");
            writer.WriteLine($"term\tB-{types[i % types.Length]}");
            writer.WriteLine();
        }
    }
}
