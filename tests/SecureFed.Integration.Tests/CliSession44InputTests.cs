using SecureFed.Cli;
using SecureFed.Cli.Demo;
using SecureFed.Experiments;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Defects of the session-44 new-user review that are not the demo's option checks (those are in
/// <see cref="CliBadInputTests"/>): a command without its sub-command, a folder that is not an audit log, an experiment's
/// site count, the commands the demo prints for pasting, and the demo's warning for a batch under one sentence.
/// </summary>
public sealed class CliSession44InputTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cli-s44-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRun.RunAsync(args);

    [Theory]
    [InlineData(new string[0], "'securefed' needs one of its commands: demo, experiment,", null)]
    [InlineData(new[] { "audit" }, "'securefed audit' needs one of its commands: verify, report, prove, check-proof.", null)]
    [InlineData(new[] { "frobnicate" }, "'securefed' needs one of its commands: demo,", "error: Unrecognized command or argument 'frobnicate'.")]
    [InlineData(new[] { "bench", "frob" }, "'securefed bench' needs one of its commands: secagg,", "error: Unrecognized command or argument 'frob'.")]
    public async Task CommandWithoutItsSubcommand_NamesTheSubcommandsItTakes(string[] args, string expected, string? first)
    {
        var (code, _, err) = await Run(args);

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains(expected, err, StringComparison.Ordinal);
        Assert.DoesNotContain("Required command was not provided", err, StringComparison.Ordinal);
        if (first is not null)
        {
            Assert.StartsWith(first, err, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AuditVerify_TheDemosOutputFolderInsteadOfALog_UsageErrorListingTheLogsUnderIt()
    {
        // The demo's layout: aggregator-data/audit and agents/<site>/audit, each a log folder.
        string output = Path.Combine(_dir, "demo-out");
        foreach (string log in new[] { Path.Combine(output, "aggregator-data", "audit"), Path.Combine(output, "agents", "site-de", "audit") })
        {
            Directory.CreateDirectory(Path.Combine(log, "checkpoints"));
            File.WriteAllText(Path.Combine(log, "audit.jsonl"), "");
        }

        var (code, _, err) = await Run("audit", "verify", output);

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains($"'{output}' is not an audit log folder (no audit.jsonl or checkpoints/ in it); the log folders under it: "
            + $"{Path.Combine(output, "agents", "site-de", "audit")}, {Path.Combine(output, "aggregator-data", "audit")}.", err, StringComparison.Ordinal);
        Assert.DoesNotContain("FAILED", err, StringComparison.Ordinal);

        string empty = Path.Combine(_dir, "empty");
        Directory.CreateDirectory(empty);
        (code, _, err) = await Run("audit", "verify", empty);
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains("is not an audit log folder (no audit.jsonl or checkpoints/ in it, nor in its subfolders)", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuditVerify_ALogThatLostItsAuditJsonl_StillFailsTheVerification()
    {
        // Its checkpoints remain: a damaged log, not a wrong folder.
        string log = Path.Combine(_dir, "log");
        Directory.CreateDirectory(Path.Combine(log, "checkpoints"));

        var (code, output, err) = await Run("audit", "verify", log);

        Assert.Equal(1, code);
        Assert.Contains("FAILED", output + err, StringComparison.Ordinal);
    }

    [Fact]
    public void Experiment_FarMoreSitesThanItSimulates_RefusedBeforeReadingAnything()
    {
        // --sites 2000000000 used to allocate 16 GB of site shares before finding the corpus too small.
        var options = new ExperimentOptions { DataDirectory = _dir, Sites = 2_000_000_000 };

        var ex = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Equal($"--sites must be at most {ExperimentOptions.MaxSites}, not 2000000000: every site trains in this process, one after another.", ex.Message);
        Assert.Null(Record.Exception(() => (options with { Sites = ExperimentOptions.MaxSites }).Validate()));
    }

    [Fact]
    public void Experiment_SeedsPastTheLargestSeed_RefusedNamingBothOptions()
    {
        // CLI crash hunt (session 56): --first-seed 2147483647 overflowed the seed loop, which ran no seed ("No arm ran.").
        var options = new ExperimentOptions { DataDirectory = _dir, FirstSeed = int.MaxValue, Seeds = 2 };

        var ex = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Equal($"--first-seed {int.MaxValue} with --seeds 2 runs seeds up to 2147483648, past the largest seed {int.MaxValue}; give a smaller --first-seed or fewer --seeds.", ex.Message);
        Assert.Null(Record.Exception(() => (options with { Seeds = 1 }).Validate()));
    }

    [Theory]
    [InlineData("--warm-start", "--warm-start is blank")]
    [InlineData("--distill-teacher", "--distill-teacher is blank")]
    [InlineData("--config", "--config is blank; give default, tiny, tiny-crf, tiny-encoder, tiny-crf-encoder, tiny-crf-encoder-mean or a JSON file")]
    public async Task Experiment_BlankPathOption_UsageErrorNamingIt(string option, string expected)
    {
        var (code, _, err) = await Run("experiment", "--data", _dir, option, "", "--out", Path.Combine(_dir, "out"));

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains(expected, err, StringComparison.Ordinal);
        Assert.DoesNotContain("(Parameter", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TaggerTrainAndProvisionRevoke_BlankPathOption_UsageErrorNamingIt()
    {
        string train = Path.Combine(_dir, "train.tsv");
        File.WriteAllText(train, "Ataxia\tB-Disease\n");
        var (code, _, err) = await Run("tagger", "train", "--train", train, "--config", "", "--out", Path.Combine(_dir, "model"));
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains("--config is blank", err, StringComparison.Ordinal);

        (code, _, err) = await Run("provision", "revoke", "--manifest", " ", "--site", "site-a");
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains("--manifest is blank", err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/tmp/securefed-demo-20261205/aggregator-data/audit", "/tmp/securefed-demo-20261205/aggregator-data/audit")]
    [InlineData("/tmp/out dir/audit", "'/tmp/out dir/audit'")]
    [InlineData("/tmp/демо [1]/a$b", "'/tmp/демо [1]/a$b'")]
    [InlineData("/tmp/it's", "'/tmp/it'\\''s'")]
    [InlineData("", "''")]
    public void ShellQuote_PathsWithCharactersAShellReads_SingleQuoted(string path, string expected)
    {
        Assert.Equal(expected, DemoRunner.ShellQuote(path));
    }

    [Theory]
    [InlineData(0.0001, 1808, true)]
    [InlineData(0.0005, 1808, true)]
    [InlineData(0.3, 1808, false)]
    [InlineData(0.01, 100, false)]
    [InlineData(0.009, 100, true)]
    public void SmallBatchWarning_OnlyWhenTheExpectedBatchIsUnderOneSentence(double q, int smallest, bool warned)
    {
        string? warning = DemoRunner.SmallBatchWarning(q, smallest);

        Assert.Equal(warned, warning is not null);
        if (warned)
        {
            Assert.Contains($"from the smallest site ({smallest} sentences)", warning, StringComparison.Ordinal);
            Assert.Contains($"at least 1/{smallest}", warning, StringComparison.Ordinal);
        }
    }
}
