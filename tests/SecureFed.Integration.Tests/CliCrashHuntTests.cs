using SecureFed.Audit;
using SecureFed.Cli;
using SecureFed.Crypto;

namespace SecureFed.Integration.Tests;

/// <summary>
/// A new user's and a hospital operator's wrong inputs (crash-hunt review): each is refused before any work with an
/// error naming the option and the path the user gave, never a temporary file or a bare .NET message.
/// </summary>
public sealed class CliCrashHuntTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cli-hunt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRun.RunAsync(args);

    private string Log()
    {
        string directory = Path.Combine(_dir, "log");
        using var key = Ed25519PrivateKey.FromSeed([.. Enumerable.Range(1, 32).Select(i => (byte)i)]);
        using AuditLog log = AuditLog.Open(directory, "aggregator", key, "securefed.test/aggregator");
        log.Append("test.event", f => f.Add("n", 1));
        return directory;
    }

    [Fact]
    public async Task AuditReport_OutUnderAFile_UsageErrorNamingOutAndTheFileBeforeAnyLogIsRead()
    {
        // Before: every log was verified, then "error: The file '…/notes.txt' already exists." (exit 1), naming no option.
        string logs = Log();
        string file = Path.Combine(_dir, "notes.txt");
        File.WriteAllText(file, "kept");
        string output = Path.Combine(file, "report.html");

        var (code, stdout, err) = await Run("audit", "report", logs, "--out", output);

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.StartsWith($"error: --out {output}: the file's folder {file} is a file", err, StringComparison.Ordinal);
        Assert.Empty(stdout);
        Assert.Equal("kept", File.ReadAllText(file));
    }

    [SkippableFact]
    public async Task AuditReport_OutWhereNoFileCanBeWritten_ErrorNamingOutAndThePathNotATemporaryFile()
    {
        // Before: "error: Could not find file '/proc/report.html.tmp'." after every log was verified.
        Skip.IfNot(OperatingSystem.IsLinux(), "/proc is Linux's");
        string logs = Log();

        var (code, stdout, err) = await Run("audit", "report", logs, "--out", "/proc/report.html");

        Assert.True(code == CliApp.ExitFailure, $"exit {code}: {err}");
        Assert.StartsWith("error: --out /proc/report.html: cannot write in the folder /proc (", err, StringComparison.Ordinal);
        Assert.DoesNotContain(".tmp", err, StringComparison.Ordinal);
        Assert.Empty(stdout);
    }

    [Fact]
    public async Task AuditReport_OutInAFolderNotYetMade_StillWrittenThere()
    {
        // The write check must not take away what the report has always done: make the report's missing folders.
        string logs = Log();
        string output = Path.Combine(_dir, "reports", "today", "report.html");

        var (code, _, err) = await Run("audit", "report", logs, "--out", output);

        Assert.True(code is CliApp.ExitOk or CliApp.ExitFailure, $"exit {code}: {err}"); // a lone aggregator log may fail its cross-check
        Assert.True(File.Exists(output), err);
    }

    [Fact]
    public async Task BenchDpSgd_UnknownConfig_UsageErrorWithoutTheBanner()
    {
        // Before: the banner ("bench dp-sgd: 48 sentences … from …") was printed, then the usage error.
        var (code, stdout, err) = await Run("bench", "dp-sgd", "--config", "tiny", "--config", "huge", "--sentences", "48", "--batch", "8", "--steps", "1", "--repeats", "1");

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.StartsWith("error: --config must be default or tiny, got 'huge'.", err, StringComparison.Ordinal);
        Assert.Empty(stdout);
    }

    [Fact]
    public async Task BenchDpSgd_DataIsAFolder_UsageErrorSayingSo()
    {
        // Before: "--data: no file '…'", as if the folder did not exist.
        var (code, stdout, err) = await Run("bench", "dp-sgd", "--data", _dir, "--config", "tiny");

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.StartsWith($"error: --data {_dir} is a folder; give the file itself.", err, StringComparison.Ordinal);
        Assert.Empty(stdout);
    }
    [Fact]
    public async Task Demo_DataIsAFile_UsageErrorSayingSo()
    {
        // Before: "--data …/train.tsv: no such folder." for a file that is there (the corpus's train.tsv given for its folder).
        string file = Path.Combine(_dir, "train.tsv");
        File.WriteAllText(file, "Ataxia\tB-Disease\n");
        string output = Path.Combine(_dir, "out");

        var (code, stdout, err) = await Run("demo", "--data", file, "--out", output);

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.StartsWith($"error: --data {file} is a file; give the folder", err, StringComparison.Ordinal);
        Assert.Empty(stdout);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task Demo_PublicDataWithoutTrainTsv_UsageErrorBeforeTheBanner()
    {
        // Before: the banner and the corpus lines were printed (and the output folder made) before the refusal.
        string empty = Path.Combine(_dir, "public");
        Directory.CreateDirectory(empty);
        string output = Path.Combine(_dir, "out");

        var (code, stdout, err) = await Run("demo", "--corpus", "synthetic", "--model", "tiny", "--public-data", empty, "--out", output);

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.StartsWith($"error: --public-data: {Path.Combine(empty, "train.tsv")} does not exist", err, StringComparison.Ordinal);
        Assert.DoesNotContain("output in", stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task Demo_MalformedPublicData_UsageErrorNamingTheOptionAndTheLine()
    {
        // Before: exit 1 with the bare line error, where a malformed --data file is a usage error (exit 2) naming --data.
        string corpus = Path.Combine(_dir, "public");
        Directory.CreateDirectory(corpus);
        File.WriteAllText(Path.Combine(corpus, "train.tsv"), "Ataxia\tB-Disease\nworld\n");
        string output = Path.Combine(_dir, "out");

        var (code, _, err) = await Run("demo", "--corpus", "synthetic", "--sentences", "300", "--model", "tiny", "--rounds", "1", "--no-comparison", "--public-data", corpus, "--out", output);

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.StartsWith($"error: --public-data {corpus}: ", err, StringComparison.Ordinal);
        Assert.Contains("train.tsv:2: expected 'TOKEN<TAB>TAG'", err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }
    /// <summary>
    /// A corpus folder option of experiment or privacy audit naming a folder that does not exist, or a file: exit 1 with
    /// "X is not a CoNLL corpus folder: train.tsv is missing", naming no option (for --warm-start after the corpus had
    /// been read and split), where the demo and every other command refuse such a path as a usage error naming it.
    /// </summary>
    [Theory]
    [InlineData("experiment", "--data", "missing")]
    [InlineData("experiment", "--data", "file")]
    [InlineData("experiment", "--corpora", "missing")]
    [InlineData("experiment", "--warm-start", "missing")]
    [InlineData("experiment", "--pretrain-text", "file")]
    [InlineData("privacy", "--data", "missing")]
    [InlineData("privacy", "--warm-start", "file")]
    public async Task ExperimentAndPrivacyAudit_CorpusFolderMissingOrAFile_UsageErrorNamingTheOption(string command, string option, string kind)
    {
        string corpus = Path.Combine(_dir, "corpus");
        Directory.CreateDirectory(corpus);
        foreach (string file in new[] { "train.tsv", "dev.tsv", "test.tsv" })
        {
            File.WriteAllText(Path.Combine(corpus, file), string.Concat(Enumerable.Repeat("Ataxia\tB-Disease\nis\tO\nrare\tO\n\n", 6)));
        }

        string bad = kind == "missing" ? Path.Combine(_dir, "no-such-corpus") : Path.Combine(corpus, "train.tsv");
        string output = Path.Combine(_dir, "out");
        string[] args = (command, option) switch
        {
            ("experiment", "--corpora") => ["experiment", "--split", "by-corpus", "--corpora", $"{corpus},{bad}"],
            ("experiment", "--data") => ["experiment", "--data", bad],
            ("experiment", "--pretrain-text") => ["experiment", "--data", corpus, "--warm-start", corpus, option, bad],
            ("experiment", _) => ["experiment", "--data", corpus, option, bad],
            (_, "--data") => ["privacy", "audit", "--data", bad],
            _ => ["privacy", "audit", "--data", corpus, option, bad],
        };

        var (code, stdout, err) = await Run([.. args, "--rounds", "1", "--epsilon", "none", "--out", output]);

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.StartsWith(kind == "missing" ? $"error: {option} {bad}: no such folder" : $"error: {option} {bad} is a file", err, StringComparison.Ordinal);
        Assert.Empty(stdout);
        Assert.False(Directory.Exists(output));
    }
}
