using SecureFed.Cli;
using SecureFed.Experiments;
using SecureFed.Protocol;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>
/// The session-44 review's leftovers: site-level settings the aggregator would refuse only after the demo had prepared
/// the sites, server-rule errors that did not name their option, and a corpus whose train.tsv is a folder (reported
/// as missing).
/// </summary>
public sealed class CliSession45InputTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cli-s45-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRun.RunAsync(args);

    [Theory]
    [InlineData("--site-noise", "1e300", "--update-clip 30 with --site-noise 1E+300 leaves secure aggregation no room for a round of 3 sites")]
    [InlineData("--update-clip", "1e308", "--update-clip 1E+308 with --site-noise 0.0005 leaves secure aggregation no room for a round of 3 sites")]
    public async Task Demo_SiteSettingsThatOverflowSecureAggregation_UsageErrorNamingTheOptionsBeforeAnyFolderIsMade(string option, string value, string expected)
    {
        // Before: the sites were prepared and the aggregator then failed at start-up naming SecureFed:L2Clip and
        // SecureFed:SiteNoiseMultiplier, settings a demo user never wrote.
        string output = Path.Combine(_dir, "out");

        var (code, _, err) = await Run("demo", "--model", "tiny", option, value, "--out", output);

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains(expected, err, StringComparison.Ordinal);
        Assert.Contains("do not fit in 32-bit words", err, StringComparison.Ordinal);
        Assert.DoesNotContain("SecureFed:", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output), "a refused demo leaves no output folder behind");
    }

    [Fact]
    public void UpdatesFitProblem_TheDefaults_Fit_AndTheAutomaticClipIsNamedAsSuch()
    {
        string[] types = ["Disease"];
        Assert.Null(Cli.Demo.DemoRunner.UpdatesFitProblem(120_000, 30, automaticClip: false, 3, 0.0005, 1808, types));

        string? problem = Cli.Demo.DemoRunner.UpdatesFitProblem(120_000, 1e300, automaticClip: true, 3, 0.0005, 1808, types);

        Assert.NotNull(problem);
        Assert.StartsWith("the update clip S = 1E+300 (set from --lr, --grad-clip and --sample-rate for one-step rounds)", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("demo", "--server-lr", "-1", "--server-lr: the server learning rate must be a positive number, not -1.")]
    [InlineData("demo", "--server-beta1", "1", "--server-beta1: the server β1 (momentum) must be in [0, 1), not 1.")]
    [InlineData("demo", "--server-beta2", "NaN", "--server-beta2: the server β2 must be in [0, 1), not NaN.")]
    [InlineData("demo", "--server-tau", "0", "--server-tau: the server τ (adaptivity) must be a positive number, not 0.")]
    [InlineData("experiment", "--server-beta2", "1", "--server-beta2: the server β2 must be in [0, 1), not 1.")]
    [InlineData("experiment", "--server-tau", "0", "--server-tau: the server τ (adaptivity) must be a positive number, not 0.")]
    public async Task ServerRuleOutOfRange_TheErrorNamesTheOption(string command, string option, string value, string expected)
    {
        string output = Path.Combine(_dir, "out-" + option.TrimStart('-'));
        string[] args = command == "demo"
            ? ["demo", "--server-optimizer", "adam", option, value, "--out", output]
            : ["experiment", "--data", Corpus("c"), "--server-optimizer", "adam", option, value, "--out", output];

        var (code, _, err) = await Run(args);

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains(expected, err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void ServerOptimizerOptions_ConfigurationPrefix_StillNamesTheKeys()
    {
        var rule = new ServerOptimizerOptions { LearningRate = -1 };

        Assert.Equal(["SecureFed:ServerLearningRate: the server learning rate must be a positive number, not -1."], rule.Validate("SecureFed:Server"));
        Assert.Equal(["The server learning rate must be a positive number, not -1."], rule.Validate());
    }

    [Theory]
    [InlineData("demo")]
    [InlineData("experiment")]
    public async Task CorpusWhoseTrainTsvIsAFolder_SaysSoInsteadOfMissing(string command)
    {
        string corpus = Corpus("folder");
        File.Delete(Path.Combine(corpus, "train.tsv"));
        Directory.CreateDirectory(Path.Combine(corpus, "train.tsv"));
        string output = Path.Combine(_dir, "out-" + command);

        var (code, _, err) = await Run(command, "--data", corpus, "--out", output);

        Assert.NotEqual(0, code);
        Assert.Contains("train.tsv is a folder, not a file", err, StringComparison.Ordinal);
        Assert.DoesNotContain("missing", err, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadPart_TrainTsvMissing_StillSaysMissing()
    {
        string corpus = Corpus("gone");
        File.Delete(Path.Combine(corpus, "train.tsv"));

        var ex = Assert.Throws<InputDataException>(() => DataSplitter.ReadPart(corpus, "train.tsv", 0, 1));

        Assert.Contains("train.tsv is missing", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>A small CoNLL corpus folder (train, dev, test) with one entity type.</summary>
    private string Corpus(string name)
    {
        string directory = Path.Combine(_dir, name);
        Directory.CreateDirectory(directory);
        foreach (string file in new[] { "train.tsv", "dev.tsv", "test.tsv" })
        {
            using var writer = new StreamWriter(Path.Combine(directory, file));
            for (int i = 0; i < 30; i++)
            {
                writer.WriteLine("The\tO");
                writer.WriteLine("patient\tO");
                writer.WriteLine("has\tO");
                writer.WriteLine("diabetes\tB-Disease");
                writer.WriteLine();
            }
        }

        return directory;
    }
}
