using SecureFed.Cli;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Output options never overwrite a file the command did not write (found by the session-31 new-user test: an audit
/// report over aggregator.db and ca.key, tagger eval's predictions over a training corpus); a damaged model's sizes are
/// an error naming the file, not a crash in libtorch.
/// </summary>
public sealed class CliOutputOverwriteTests : IDisposable
{
    private const string OneSentence = "Ataxia\tB-Disease\nis\tO\nrare\tO\n.\tO\n";

    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cli-overwrite-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("aggregator.db", "SQLite format 3\0 pages")]
    [InlineData("ca.key", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n")]
    [InlineData("notes.html", "<!DOCTYPE html>\n<html><head><title>My notes</title></head></html>\n")]
    public async Task AuditReport_OutIsAnExistingFileThatIsNoReport_RefusedAndKept(string name, string content)
    {
        string logs = Logs();
        string existing = Path.Combine(_dir, name);
        File.WriteAllText(existing, content);

        var (code, _, err) = await Run("audit", "report", logs, "--out", existing);

        AssertUsageError(code, err, $"--out {existing} already exists and is not an earlier audit report");
        Assert.Equal(content, File.ReadAllText(existing));
    }

    [Fact]
    public async Task AuditReport_OutIsAnEmptyFile_Written()
    {
        string logs = Logs();
        string report = Path.Combine(_dir, "empty.html");
        File.WriteAllText(report, "");

        var (code, _, err) = await Run("audit", "report", logs, "--out", report);

        Assert.True(code is CliApp.ExitOk or CliApp.ExitFailure, err);
        Assert.StartsWith("<!DOCTYPE html>", File.ReadAllText(report), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuditReport_OutIsAnEarlierReport_Replaced()
    {
        string logs = Logs();
        string report = Path.Combine(_dir, "report.html");
        var (first, _, firstErr) = await Run("audit", "report", logs, "--out", report);
        Assert.True(first is CliApp.ExitOk or CliApp.ExitFailure, firstErr);
        File.AppendAllText(report, "<!-- marked -->");

        var (second, _, secondErr) = await Run("audit", "report", logs, "--out", report);

        Assert.True(second is CliApp.ExitOk or CliApp.ExitFailure, secondErr);
        Assert.DoesNotContain("<!-- marked -->", File.ReadAllText(report), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("train.tsv")]
    [InlineData("predictions.conll")]
    public async Task TaggerEval_ConllOutExists_RefusedAndKept(string name)
    {
        string model = TinyModel();
        string test = Path.Combine(_dir, "test.tsv");
        File.WriteAllText(test, OneSentence);
        string existing = Path.Combine(_dir, name);
        File.WriteAllText(existing, OneSentence + OneSentence);

        var (code, _, err) = await Run("tagger", "eval", "--model", model, "--test", test, "--conll-out", existing);

        AssertUsageError(code, err, $"--conll-out {existing} already exists", "delete it");
        Assert.Equal(OneSentence + OneSentence, File.ReadAllText(existing));
    }

    /// <summary>A new path, or an empty file made beforehand (mktemp, touch): nothing to lose, so it is written.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TaggerEval_ConllOutNewOrEmpty_Written(bool emptyFileFirst)
    {
        string model = TinyModel();
        string test = Path.Combine(_dir, "test.tsv");
        File.WriteAllText(test, OneSentence);
        string output = Path.Combine(_dir, "predictions.conll");
        if (emptyFileFirst)
        {
            File.WriteAllText(output, "");
        }

        var (code, _, err) = await Run("tagger", "eval", "--model", model, "--test", test, "--conll-out", output);

        Assert.True(code == CliApp.ExitOk, err);
        Assert.StartsWith("Ataxia B-Disease ", File.ReadAllText(output), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tagger", "predict")]
    [InlineData("model", "merge")]
    public async Task DamagedModelWithAHugeSize_ErrorNamingModelJsonExit1(string group, string command)
    {
        string model = TinyModel();
        string meta = Path.Combine(model, "model.json");
        File.WriteAllText(meta, File.ReadAllText(meta).Replace("\"word_buckets\": 2048", "\"word_buckets\": 2147483647", StringComparison.Ordinal));
        Assert.Contains("2147483647", File.ReadAllText(meta), StringComparison.Ordinal);
        string input = Path.Combine(_dir, "input.txt");
        File.WriteAllText(input, "Ataxia is rare .\n");
        string[] args = command == "predict"
            ? [group, command, "--model", model, "--input", input]
            : [group, command, model, TinyModel("other"), "--lambda", "0.5", "--out", Path.Combine(_dir, "merged")];

        var (code, _, err) = await Run(args);

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Contains(meta, err, StringComparison.Ordinal);
        Assert.Contains("word_buckets is 2147483647", err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static void AssertUsageError(int code, string err, params string[] expected)
    {
        Assert.True(code == CliApp.ExitUsage, err);
        Assert.StartsWith("error: ", err, StringComparison.Ordinal);
        foreach (string part in expected)
        {
            Assert.Contains(part, err, StringComparison.Ordinal);
        }
    }

    private string Logs()
    {
        string logs = Path.Combine(_dir, "logs");
        Directory.CreateDirectory(logs);
        File.WriteAllText(Path.Combine(logs, "audit.jsonl"), "{\"line\":1}\n");
        return logs;
    }

    private string TinyModel(string name = "model")
    {
        string dir = Path.Combine(_dir, name);
        using TaggerModel model = TaggerModel.Create(TaggerConfig.Tiny, LabelSet.Create(["Disease"]), 1, "cpu");
        model.Save(dir);
        return dir;
    }
}
