using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Bad input a new user can give the CLI (found by the session-29 review): each is a usage error naming what is wrong,
/// never a stack trace, and nothing already on disk is changed.
/// </summary>
public sealed class CliBadInputTests : IDisposable
{
    private const string OneSentence = "Ataxia\tB-Disease\nis\tO\nrare\tO\n.\tO\n";

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-cli-bad-" + Guid.NewGuid().ToString("N"));

    public CliBadInputTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static void AssertUsageError(int code, string err, params string[] expected)
    {
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.StartsWith("error: ", err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
        foreach (string part in expected)
        {
            Assert.Contains(part, err, StringComparison.Ordinal);
        }
    }

    private string Corpus(string name, int train, int dev, int test, string sentence = OneSentence)
    {
        string dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "train.tsv"), string.Join("\n", Enumerable.Repeat(sentence, train)));
        File.WriteAllText(Path.Combine(dir, "dev.tsv"), string.Join("\n", Enumerable.Repeat(sentence, dev)));
        File.WriteAllText(Path.Combine(dir, "test.tsv"), string.Join("\n", Enumerable.Repeat(sentence, test)));
        return dir;
    }

    [Theory]
    [InlineData(2, 1, 1, "train.tsv", "needs at least one per site")]
    [InlineData(0, 1, 1, "train.tsv", "has 0 sentences")]
    [InlineData(3, 0, 1, "dev.tsv", "has no sentence")]
    [InlineData(3, 1, 0, "test.tsv", "has no sentence")]
    public async Task Demo_CorpusTooSmallForTheSites_UsageErrorNamingTheFile(int train, int dev, int test, string file, string problem)
    {
        string data = Corpus("small", train, dev, test);

        var (code, _, err) = await Run("demo", "--data", data, "--sites", "3", "--out", Path.Combine(_dir, "out"));

        AssertUsageError(code, err, Path.Combine(data, file), problem);
        Assert.False(Directory.Exists(Path.Combine(_dir, "out")), "a refused corpus leaves no output folder behind");
    }

    [Fact]
    public async Task Demo_CorpusWithoutEntityTags_UsageError()
    {
        string data = Corpus("untagged", 4, 1, 1, "Nothing\tO\nhere\tO\n");

        var (code, _, err) = await Run("demo", "--data", data, "--out", Path.Combine(_dir, "out"));

        AssertUsageError(code, err, "tag no entity");
    }

    [Theory]
    [InlineData("--out", "")]
    [InlineData("--out", "  ")]
    public async Task Demo_BlankOut_UsageError(string option, string value)
    {
        var (code, _, err) = await Run("demo", "--corpus", "synthetic", option, value);

        AssertUsageError(code, err, "--out is blank");
    }

    [Theory]
    [InlineData("11")]
    [InlineData("0")]
    public async Task Demo_DropRoundOutsideTheRun_UsageError(string round)
    {
        var (code, _, err) = await Run("demo", "--corpus", "synthetic", "--rounds", "10", "--drop-site-at", "mask", "--drop-round", round,
            "--out", Path.Combine(_dir, "out"));

        AssertUsageError(code, err, "--drop-round must be a round of this run, 1 to 10", "got " + round);
    }

    [Fact]
    public async Task TaggerTrain_OutHoldsAModel_RefusedAndTheModelKept()
    {
        string data = Corpus("c", 3, 1, 1);
        string model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "model.json"), "{\"earlier\":true}");

        var (code, _, err) = await Run("tagger", "train", "--train", Path.Combine(data, "train.tsv"), "--out", model, "--config", "tiny", "--epochs", "1");

        AssertUsageError(code, err, "already exists and is not empty");
        Assert.Equal("{\"earlier\":true}", File.ReadAllText(Path.Combine(model, "model.json")));
    }

    [Fact]
    public async Task TaggerTrain_EmptyTrainFile_UsageErrorNamingIt()
    {
        string data = Corpus("empty", 0, 1, 1);

        var (code, _, err) = await Run("tagger", "train", "--train", Path.Combine(data, "train.tsv"), "--out", Path.Combine(_dir, "m"), "--config", "tiny");

        AssertUsageError(code, err, Path.Combine(data, "train.tsv"), "no sentence");
    }

    [Fact]
    public async Task TaggerEval_ConllOutIsTheGoldFile_RefusedAndTheGoldKept()
    {
        string data = Corpus("c", 3, 1, 1);
        string gold = Path.Combine(data, "test.tsv");
        string before = File.ReadAllText(gold);
        string model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "model.json"), "{}");

        var (code, _, err) = await Run("tagger", "eval", "--model", model, "--test", gold, "--conll-out", gold);

        AssertUsageError(code, err, "is the --test file");
        Assert.Equal(before, File.ReadAllText(gold));
    }

    [Fact]
    public async Task ModelSpec_TypeWithASpace_UsageErrorAndNoFile()
    {
        string spec = Path.Combine(_dir, "spec.json");

        var (code, _, err) = await Run("model", "spec", "--out", spec, "--size", "tiny", "--types", "Disease,Adverse Event");

        AssertUsageError(code, err, "--types", "Adverse Event");
        Assert.False(File.Exists(spec));
    }

    [Theory]
    [InlineData("--noise-multiplier", "1,1")]
    [InlineData("--sample-rate", "0,1")]
    public async Task NumberWithADecimalComma_UsageErrorInsteadOfAThousandsSeparator(string option, string value)
    {
        string[] args = ["privacy", "epsilon", "--noise-multiplier", "1.1", "--sample-rate", "0.1", "--steps", "10", "--delta", "1e-5"];
        args[Array.IndexOf(args, option) + 1] = value;

        var (code, output, err) = await Run(args);

        AssertUsageError(code, err, $"{option} {value}", "decimal point", value.Replace(',', '.'));
        Assert.Empty(output);
    }

    [Fact]
    public async Task NumberListWithADecimalComma_UsageError()
    {
        var (code, _, err) = await Run("bench", "dgauss", "--sigma", "0,5", "--samples", "10");

        AssertUsageError(code, err, "--sigma 0,5", "decimal point");
    }

    [Fact]
    public void DecimalCommaErrors_ListOptionsAndPlainNumbers_NotRefused()
    {
        // experiment's --epsilon is a comma-separated list (a string option); --lr 0.01 has a decimal point.
        var parse = CliApp.BuildRoot().Parse(["experiment", "--data", "x", "--sites", "3", "--epsilon", "1,3,8", "--lr", "0.01"]);

        Assert.Empty(CliApp.DecimalCommaErrors(parse));
    }
}
