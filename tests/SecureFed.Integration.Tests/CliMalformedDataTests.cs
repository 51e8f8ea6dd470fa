using SecureFed.Cli;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>
/// A malformed data file the user named (a line without a tag, an invalid tag, bytes that are not UTF-8) is a usage error,
/// exit 2, with one line naming the file and line, in every command that reads one, as in the demo (README). The tagger,
/// model layer-scales, bench dp-sgd, experiment, privacy audit and agent commands exited 1 for it (the parser's
/// InvalidDataException was reported as a failed operation). A damaged file of a command's own (a model) stays exit 1:
/// <see cref="CliBadInputTests.ModelCommands_DamagedModelJson_ErrorNamingTheFileNotACrash"/>.
/// </summary>
public sealed class CliMalformedDataTests : IDisposable
{
    private const string Sentences = "Ataxia\tB-Disease\nis\tO\nrare\tO\n\nFever\tO\nis\tO\ncommon\tO\n\n";

    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cli-malformed-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Exit 2 and, as the last line of stderr, one error line naming the file and line; no stack trace.</summary>
    private static void AssertUsageErrorNamingTheLine(int code, string err, string file, int line, string problem)
    {
        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        string last = err.TrimEnd().Split('\n')[^1];
        Assert.StartsWith("error: ", last, StringComparison.Ordinal);
        Assert.Contains($"{file}:{line}: {problem}", last, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }

    /// <summary>A corpus folder (train, dev, test) whose <paramref name="malformed"/> file has a line without a tag (line 2).</summary>
    private string Corpus(string name, string? malformed = null)
    {
        string dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(dir);
        foreach (string file in new[] { "train.tsv", "dev.tsv", "test.tsv" })
        {
            File.WriteAllText(Path.Combine(dir, file), file == malformed ? "Ataxia\tB-Disease\nis\n" : string.Concat(Enumerable.Repeat(Sentences, 4)));
        }

        return dir;
    }

    private string WriteFile(string name, string content)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    [Theory]
    [InlineData("--train", "Hello\tO\nworld\tWHAT?\n", 2, "invalid tag \"WHAT?\"")]
    [InlineData("--train", "Hello\tO\nworld\n", 2, "expected 'TOKEN<TAB>TAG'")]
    [InlineData("--dev", "Hello\tO\n\nworld\tB-\n", 3, "invalid tag \"B-\"")]
    public async Task TaggerTrain_MalformedTrainOrDev_UsageErrorNamingFileAndLine(string option, string content, int line, string problem)
    {
        string bad = WriteFile("bad.tsv", content);
        string good = WriteFile("good.tsv", Sentences);
        string output = Path.Combine(_dir, "model");
        string[] files = option == "--train" ? ["--train", bad, "--dev", good] : ["--train", good, "--dev", bad];

        var (code, _, err) = await CliRun.RunAsync(["tagger", "train", .. files, "--out", output, "--config", "tiny", "--epochs", "1"]);

        AssertUsageErrorNamingTheLine(code, err, bad, line, problem);
    }

    [Fact]
    public async Task TaggerEval_MalformedTest_UsageErrorNamingFileAndLine()
    {
        string model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "model.json"), "{}"); // the gold file is read before the model
        string test = WriteFile("test.tsv", "Ataxia\tB-Disease\nis\tO\nrare\tX-Disease\n");

        var (code, _, err) = await CliRun.RunAsync("tagger", "eval", "--model", model, "--test", test);

        AssertUsageErrorNamingTheLine(code, err, test, 3, "invalid tag \"X-Disease\"");
    }

    [Fact]
    public async Task ModelLayerScales_MalformedPublicData_UsageErrorNamingFileAndLine()
    {
        string model = Path.Combine(_dir, "model");
        using (TaggerModel tagger = TaggerModel.Create(TaggerConfig.Tiny, LabelSet.Create(["Disease"]), 1, "cpu"))
        {
            tagger.Save(model);
        }

        string corpus = Corpus("public", "train.tsv");

        var (code, _, err) = await CliRun.RunAsync("model", "layer-scales", model, "--public-data", corpus);

        AssertUsageErrorNamingTheLine(code, err, Path.Combine(corpus, "train.tsv"), 2, "expected 'TOKEN<TAB>TAG'");
    }

    [Fact]
    public async Task BenchDpSgd_MalformedData_UsageErrorNamingFileAndLine()
    {
        string data = WriteFile("bench.tsv", "Hello\tO\nworld\tWHAT?\n");

        var (code, _, err) = await CliRun.RunAsync("bench", "dp-sgd", "--data", data, "--config", "tiny", "--sentences", "2", "--batch", "1");

        AssertUsageErrorNamingTheLine(code, err, data, 2, "invalid tag \"WHAT?\"");
    }

    [Theory]
    [InlineData("--data", "train.tsv")]
    [InlineData("--data", "test.tsv")]
    [InlineData("--corpora", "dev.tsv")]
    [InlineData("--warm-start", "train.tsv")]
    public async Task Experiment_MalformedCorpusFile_UsageErrorNamingFileAndLine(string option, string file)
    {
        string good = Corpus("good");
        string bad = Corpus("bad", file);
        string[] corpus = option switch
        {
            "--corpora" => ["--split", "by-corpus", "--corpora", $"{good},{bad}"],
            "--warm-start" => ["--data", good, "--warm-start", bad],
            _ => ["--data", bad],
        };

        var (code, stdout, err) = await CliRun.RunAsync(["experiment", .. corpus, "--config", "tiny", "--rounds", "1", "--epsilon", "none", "--out", Path.Combine(_dir, "out")]);

        AssertUsageErrorNamingTheLine(code, err, Path.Combine(bad, file), 2, "expected 'TOKEN<TAB>TAG'");
        Assert.Empty(stdout);
    }

    [Fact]
    public async Task Experiment_CorpusFolderWithoutTestTsv_UsageErrorNamingTheFile()
    {
        // A missing file of the corpus folder the user named, as the demo's --data: exit 2 (it was 1).
        string corpus = Corpus("partial");
        File.Delete(Path.Combine(corpus, "test.tsv"));

        var (code, _, err) = await CliRun.RunAsync("experiment", "--data", corpus, "--config", "tiny", "--rounds", "1", "--epsilon", "none", "--out", Path.Combine(_dir, "out"));

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.Contains($"error: {corpus} is not a CoNLL corpus folder: test.tsv is missing", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Experiment_NotUtf8CorpusFile_UsageErrorNamingTheFile()
    {
        string corpus = Corpus("latin1");
        string train = Path.Combine(corpus, "train.tsv");
        File.WriteAllBytes(train, System.Text.Encoding.Latin1.GetBytes("Caf\u00e9\tO\n"));

        var (code, _, err) = await CliRun.RunAsync("experiment", "--data", corpus, "--config", "tiny", "--rounds", "1", "--epsilon", "none", "--out", Path.Combine(_dir, "out"));

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.Contains($"error: {train}:1: not UTF-8 text (byte 0xE9 at column 4, byte offset 3)", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrivacyAudit_MalformedCorpusFile_UsageErrorNamingFileAndLine()
    {
        string bad = Corpus("bad", "dev.tsv");

        var (code, _, err) = await CliRun.RunAsync("privacy", "audit", "--data", bad, "--config", "tiny", "--rounds", "1", "--epsilon", "none", "--out", Path.Combine(_dir, "out"));

        AssertUsageErrorNamingTheLine(code, err, Path.Combine(bad, "dev.tsv"), 2, "expected 'TOKEN<TAB>TAG'");
    }

    [Theory]
    [InlineData("train.tsv")]
    [InlineData("test.tsv")]
    public async Task Experiment_MalformedDistillText_UsageErrorBeforeAnyArmTrains(string file)
    {
        // The public text of --distill-text was read after the first federated arm had trained (hours, in a real run),
        // which then failed with partial results; now every corpus file is read before anything trains.
        string data = Corpus("good");
        string text = Corpus("public-text", file);
        string output = Path.Combine(_dir, "out");

        var (code, stdout, err) = await CliRun.RunAsync("experiment", "--data", data, "--distill-text", text, "--federated-only", "--epsilon", "none",
            "--config", "tiny", "--rounds", "1", "--out", output);

        AssertUsageErrorNamingTheLine(code, err, Path.Combine(text, file), 2, "expected 'TOKEN<TAB>TAG'");
        AssertNothingTrained(stdout, err, Path.Combine(output, "results.json"));
    }

    [Fact]
    public async Task Experiment_MalformedDistillTextWithSavedTeacher_UsageErrorBeforeTheTeacherIsScored()
    {
        string data = Corpus("good");
        string text = Corpus("public-text", "dev.tsv");
        string teacher = Path.Combine(_dir, "teacher");
        using (TaggerModel model = TaggerModel.Create(TaggerConfig.Tiny, LabelSet.Create(["Disease"]), 1, "cpu"))
        {
            model.Save(teacher);
        }

        string output = Path.Combine(_dir, "out");

        var (code, stdout, err) = await CliRun.RunAsync("experiment", "--data", data, "--distill-text", text, "--distill-teacher", teacher, "--epsilon", "none",
            "--config", "tiny", "--out", output);

        AssertUsageErrorNamingTheLine(code, err, Path.Combine(text, "dev.tsv"), 2, "expected 'TOKEN<TAB>TAG'");
        AssertNothingTrained(stdout, err, Path.Combine(output, "results.json"));
    }

    [Fact]
    public async Task Experiment_MalformedPretrainTextBehindTheWarmStartCache_UsageErrorBeforeAnyArmTrains()
    {
        // Seed 1's warm start comes from the cache, so --pretrain-text was first read for seed 2, after seed 1's arms.
        (string[] command, string text) = await PretrainTextBehindTheWarmStartCache();
        string output = Path.Combine(_dir, "out");

        var (code, stdout, err) = await CliRun.RunAsync([.. command, "--pooled-only", "--seeds", "2", "--out", output]);

        AssertUsageErrorNamingTheLine(code, err, Path.Combine(text, "dev.tsv"), 2, "expected 'TOKEN<TAB>TAG'");
        AssertNothingTrained(stdout, err, Path.Combine(output, "results.json"));
    }

    [Fact]
    public async Task PrivacyAudit_MalformedPretrainTextBehindTheWarmStartCache_UsageErrorBeforeAnyArmTrains()
    {
        // The audit's warm start came from the cache: --pretrain-text was never read, and a malformed one went unnoticed.
        (string[] command, string text) = await PretrainTextBehindTheWarmStartCache();
        string output = Path.Combine(_dir, "audit");

        var (code, stdout, err) = await CliRun.RunAsync(["privacy", "audit", .. command[1..], "--seed", "1", "--canaries", "1", "--repeats", "1", "--candidates", "5",
            "--audit-canaries", "4", "--audit-sentences", "0", "--group-canaries", "0", "--reference", "initial", "--out", output]);

        AssertUsageErrorNamingTheLine(code, err, Path.Combine(text, "dev.tsv"), 2, "expected 'TOKEN<TAB>TAG'");
        AssertNothingTrained(stdout, err, Path.Combine(output, "privacy-audit.json"));
        Assert.DoesNotContain("[audit]", err, StringComparison.Ordinal);
    }

    /// <summary>
    /// An experiment (seed 1, pooled arm only) that fills a warm-start cache from a pretrained encoder; then the
    /// pretraining text's dev.tsv is made malformed (line 2). Returns the options shared by the runs and the text folder.
    /// </summary>
    private async Task<(string[] Command, string Text)> PretrainTextBehindTheWarmStartCache()
    {
        string text = Corpus("public-text");
        string[] command = ["experiment", "--data", Corpus("good"), "--warm-start", Corpus("public"), "--warm-start-epochs", "1", "--pretrain-text", text,
            "--warm-start-cache", Path.Combine(_dir, "cache"), "--epsilon", "none", "--config", "tiny", "--rounds", "1"];
        var (filled, _, fillErr) = await CliRun.RunAsync([.. command, "--pooled-only", "--seeds", "1", "--out", Path.Combine(_dir, "fill")]);
        Assert.True(filled == CliApp.ExitOk, fillErr);
        File.WriteAllText(Path.Combine(text, "dev.tsv"), "Ataxia\tB-Disease\nis\n");
        return (command, text);
    }

    /// <summary>No seed started, no arm's round or result was printed, and no results file was written.</summary>
    private static void AssertNothingTrained(string stdout, string err, string results)
    {
        Assert.Empty(stdout);
        Assert.DoesNotContain("[seed ", err, StringComparison.Ordinal);
        Assert.DoesNotContain("round 1/", err, StringComparison.Ordinal);
        Assert.DoesNotContain("test F1", err, StringComparison.Ordinal);
        Assert.False(File.Exists(results), $"{results} was written: an arm ran before the input was checked");
    }

    [Fact]
    public async Task Agent_MalformedTrainFile_UsageErrorNamingFileAndLine()
    {
        string kits = Path.Combine(_dir, "fed");
        var (provisioned, _, provisionErr) = await CliRun.RunAsync("provision", "--out", kits, "--federation", "malformed", "--sites", "site-a,site-b", "--aggregator-host", "127.0.0.1");
        Assert.True(provisioned == CliApp.ExitOk, provisionErr);
        string train = WriteFile("notes-train.conll", "Ataxia\tB-Disease\nis\tO\nrare\tO\n\nFever\tWHAT?\n");

        var (code, _, err) = await CliRun.RunAsync("agent", "--config", Path.Combine(kits, "sites", "site-a", "agent.json"), $"--SecureFed:TrainFile={train}");

        AssertUsageErrorNamingTheLine(code, err, train, 5, "invalid tag \"WHAT?\"");
    }

    [Fact]
    public async Task Agent_DevFileSpellsATrainFileTypeWithOtherCase_UsageErrorNamingBothFilesLinesAndSpellings()
    {
        // The agent read TrainFile and DevFile with a table each, so each file alone was consistent and this passed.
        string kits = Path.Combine(_dir, "fed");
        var (provisioned, _, provisionErr) = await CliRun.RunAsync("provision", "--out", kits, "--federation", "spelling", "--sites", "site-a,site-b", "--aggregator-host", "127.0.0.1");
        Assert.True(provisioned == CliApp.ExitOk, provisionErr);
        string train = WriteFile("notes-train.conll", "Ataxia\tB-Disease\nis\tO\nrare\tO\n");
        string dev = WriteFile("notes-dev.conll", "Fever\tO\n\nanemia\tB-disease\n");

        var (code, _, err) = await CliRun.RunAsync("agent", "--config", Path.Combine(kits, "sites", "site-a", "agent.json"), $"--SecureFed:TrainFile={train}", $"--SecureFed:DevFile={dev}");

        AssertUsageErrorNamingTheLine(code, err, dev, 3, $"entity type \"disease\" (B-disease) differs only in letter case from \"Disease\" (first at {train}:1)");
    }
}
