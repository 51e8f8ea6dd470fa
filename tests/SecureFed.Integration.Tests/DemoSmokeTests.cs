using System.Text.RegularExpressions;
using SecureFed.Audit;
using SecureFed.Cli;
using SecureFed.Cli.Commands;
using SecureFed.Cli.Demo;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>The real demo (TorchSharp tagger, mTLS gRPC, DP, audit) on a tiny setting, so CI proves it runs.</summary>
public sealed class DemoSmokeTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-demo-smoke-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task Demo_TwoRoundsWithADropout_WritesModelChartReportAndVerifiedLogs()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["demo", "--corpus", "synthetic", "--out", _dir, "--rounds", "2", "--sentences", "60", "--local-epochs", "1", "--drop-site-at", "mask", "--drop-round", "1"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(8));

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.True(File.Exists(Path.Combine(_dir, "rounds.png")));
        Assert.True(new FileInfo(Path.Combine(_dir, "rounds.png")).Length > 1000);
        Assert.True(File.Exists(Path.Combine(_dir, "audit-report.html")));
        Assert.True(File.Exists(Path.Combine(_dir, "fused-model", "model.json")));
        string output = Plain(stdout.ToString());
        Assert.Contains("dropped: site-jp", output, StringComparison.Ordinal);
        Assert.Contains("Was it worth it", output, StringComparison.Ordinal);
        Assert.Contains("site-de alone", output, StringComparison.Ordinal);
        Assert.Contains("same federation without DP", output, StringComparison.Ordinal);
        Assert.Contains("logs", Directory.GetDirectories(_dir).Select(Path.GetFileName));
        Assert.True(File.Exists(Path.Combine(_dir, "logs", "aggregator.log")));
        // The commands printed for pasting are each one line, never broken at the console's width (a break inside
        // "$(cat …)" made the pasted curl read its token from the terminal).
        string[] lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Contains("  securefed audit verify " + DemoRunner.ShellQuote(Path.Combine(_dir, "aggregator-data", "audit")), lines);
        string token = DemoRunner.ShellQuote(Path.Combine(_dir, "federation", "operator", "operator.token"));
        Assert.Contains(lines, l => Regex.IsMatch(l, "^  curl -H \"Authorization: Bearer \\$\\(cat " + Regex.Escape(token) + "\\)\" http://127\\.0\\.0\\.1:[0-9]+/metrics$"));
        // Not a terminal: 100 columns, and no other line of the output is wider.
        Assert.All(lines.Where(l => !l.StartsWith("  securefed ", StringComparison.Ordinal) && !l.StartsWith("  curl ", StringComparison.Ordinal)),
            line => Assert.True(line.Length <= 100, $"{line.Length} columns: {line}"));
        foreach (string log in new[] { "aggregator-data/audit", "agents/site-de/audit", "agents/site-fr/audit", "agents/site-jp/audit" })
        {
            AuditVerification v = AuditVerifier.Verify(Path.Combine(_dir, log));
            Assert.True(v.Ok, v.FirstProblem);
        }
    }

    [Fact]
    public async Task Demo_DefaultCorpusTinySubsample_TrainsOnNcbiDisease()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["demo", "--out", _dir, "--rounds", "1", "--train-per-site", "20", "--no-comparison"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));

        string output = Regex.Replace(Plain(stdout.ToString()), @"\s+", " ");
        Assert.True(code == 0, $"exit {code}\n{output}\n{stderr}");
        Assert.Contains("NCBI-disease", output, StringComparison.Ordinal);
        Assert.Contains("a random subsample of 20 of each site's", output, StringComparison.Ordinal);
        Assert.Contains("│ Disease", output, StringComparison.Ordinal);
        Assert.Contains("the tiny tagger with a CRF head, fed the mean of the frozen public encoder all-MiniLM-L6-v2's six layers' token vectors too", output, StringComparison.Ordinal);
        // Without --public-data the note names the public recipe with local noise; the demo never picks a corpus up by itself.
        Assert.Contains("--public-data DIR --layer-scales --public-epochs 20 --sample-rate 0.3 --steps-per-round 1 --rounds 200", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Public warm start", output, StringComparison.Ordinal);
    }

    [Fact]
    public void DemoModel_TinyCrfIsTinyWithTheCrfHeadBothSmallTables()
    {
        TaggerConfig tiny = DemoRunner.DemoModel("tiny");
        TaggerConfig crf = DemoRunner.DemoModel("tiny-crf");

        Assert.False(tiny.Crf);
        Assert.True(crf.Crf);
        Assert.Equal(tiny with { Crf = true }, crf);
        Assert.Equal(1024, tiny.WordBuckets);
        Assert.Equal(TaggerConfig.Default, DemoRunner.DemoModel("default"));
        Assert.Equal(TaggerConfig.TinyCrfEncoderMean with { WordBuckets = 1024, CharNgramBuckets = 1024 }, DemoRunner.DemoModel(DemoSettings.DefaultModel));
        Assert.Equal(DemoRunner.DemoModel("tiny-crf") with { Encoder = "minilm-l6-v2-mean" }, DemoRunner.DemoModel("tiny-crf-encoder-mean"));
        Assert.Equal(DemoRunner.DemoModel("tiny-crf") with { Encoder = "minilm-l6-v2" }, DemoRunner.DemoModel("tiny-crf-encoder"));
        Assert.Contains("tiny, tiny-crf, tiny-encoder, tiny-crf-encoder, tiny-crf-encoder-mean, default", Assert.Throws<ArgumentException>(() => DemoRunner.DemoModel("tiny-softmax")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_UnknownModel_RefusedNamingTheChoices()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["demo", "--out", _dir, "--model", "huge"], stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.NotEqual(0, code);
        Assert.Contains("--model must be tiny, tiny-crf, tiny-encoder, tiny-crf-encoder, tiny-crf-encoder-mean, default, got 'huge'.", stderr.ToString() + stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "agents")));
    }

    [Fact]
    public async Task Demo_DistributedPatientNoise_OneStepPerRoundAtSigmaOverSqrtKLedgersWithinBothBudgets()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["demo", "--out", _dir, "--rounds", "2", "--train-per-site", "20", "--no-comparison", "--patient-noise", "distributed"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));

        string output = Regex.Replace(Plain(stdout.ToString()), @"\s+", " ");
        Assert.True(code == 0, $"exit {code}\n{output}\n{stderr}");
        Assert.Contains("after 2 steps", output, StringComparison.Ordinal);
        Match printed = Regex.Match(output, @"Patient-level noise distributed: one DP-SGD step per round, each site adds σ/√2 = [0-9.]+; .* collusion ε=([0-9.]+)");
        Assert.True(printed.Success, output);
        double collusionBudget = double.Parse(printed.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        foreach (string site in new[] { "site-de", "site-fr", "site-jp" })
        {
            var ledger = SecureFed.Privacy.PrivacyLedger.OpenReadOnly(Path.Combine(_dir, "agents", site, "privacy-ledger.jsonl"));
            Assert.Equal(2, ledger.Entries.Count(e => e.Guarantee == SecureFed.Privacy.Guarantee.RecordCollusion));
            double record = ledger.Spent(SecureFed.Privacy.Guarantee.Record, 1e-5).Epsilon;
            double collusion = ledger.Spent(SecureFed.Privacy.Guarantee.RecordCollusion, 1e-5).Epsilon;
            Assert.InRange(record, 7.9, 8.0001);
            Assert.InRange(collusion, record, collusionBudget + 0.01);
            // Without --update-clip, S sits just above a step's norm: it must not bind (every round an exact DP-SGD step).
            string[] ledgerEvents = [.. File.ReadAllLines(Path.Combine(_dir, "agents", site, "audit", AuditLog.LogFileName))
                .Where(l => l.Contains($"\"{AuditEvents.PrivacyLedger}\"", StringComparison.Ordinal) && l.Contains("\"update_clipped\"", StringComparison.Ordinal))];
            Assert.Equal(2, ledgerEvents.Length);
            Assert.All(ledgerEvents, l => Assert.Contains("\"update_clipped\":false", l, StringComparison.Ordinal));
        }

        Match clip = Regex.Match(output, @"Site-level DP: updates clipped to S=([0-9.]+),");
        Assert.True(clip.Success, output);
        // Not the local default 30: with 20 sentences per site (q·N = 2) a step's noise is large, and so is S.
        Assert.NotEqual(30, double.Parse(clip.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Demo_StepsPerRoundOneWithLocalNoise_OneFullNoiseStepPerRoundWithinTheBudget()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["demo", "--out", _dir, "--rounds", "2", "--train-per-site", "20", "--no-comparison", "--steps-per-round", "1"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));

        string output = Regex.Replace(Plain(stdout.ToString()), @"\s+", " ");
        Assert.True(code == 0, $"exit {code}\n{output}\n{stderr}");
        Assert.Contains("after 2 steps (1 per round)", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Patient-level noise distributed", output, StringComparison.Ordinal);
        foreach (string site in new[] { "site-de", "site-fr", "site-jp" })
        {
            var ledger = SecureFed.Privacy.PrivacyLedger.OpenReadOnly(Path.Combine(_dir, "agents", site, "privacy-ledger.jsonl"));
            Assert.DoesNotContain(ledger.Entries, e => e.Guarantee == SecureFed.Privacy.Guarantee.RecordCollusion);
            Assert.InRange(ledger.Spent(SecureFed.Privacy.Guarantee.Record, 1e-5).Epsilon, 7.9, 8.0001);
            // Without --update-clip, S sits just above a step's norm, as with split noise: it must not bind.
            string[] ledgerEvents = [.. File.ReadAllLines(Path.Combine(_dir, "agents", site, "audit", AuditLog.LogFileName))
                .Where(l => l.Contains($"\"{AuditEvents.PrivacyLedger}\"", StringComparison.Ordinal) && l.Contains("\"update_clipped\"", StringComparison.Ordinal))];
            Assert.Equal(2, ledgerEvents.Length);
            Assert.All(ledgerEvents, l => Assert.Contains("\"update_clipped\":false", l, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Demo_DistributedWithSeveralStepsPerRound_Refused()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["demo", "--out", _dir, "--patient-noise", "distributed", "--steps-per-round", "2"], stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.NotEqual(0, code);
        Assert.Contains("--patient-noise distributed takes exactly one DP-SGD step per round", stderr.ToString() + stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.3, 7, 200)] // the defaults: 10 rounds of 7 local epochs of 3 steps, capped at 20
    [InlineData(0.1, 2, 200)] // the defaults up to session 41: 10 rounds of 2 local epochs of 10 steps
    [InlineData(0.3, 2, 60)]
    [InlineData(0.02, 1, 200)] // 50 steps, capped at the recipe's 20
    [InlineData(0.5, 1, 20)]
    public void OneStepRounds_WithoutRoundsGiven_AsManyRoundsAsTheDefaultRecipesStepsAtMost500(double q, int epochs, int rounds) =>
        Assert.Equal(rounds, DemoCommand.OneStepRounds(q, epochs));

    [Theory]
    [InlineData(10, 7, 0.3, 20, 20, 10, 2)] // the defaults: 60 passes of DP-SGD; the comparisons 10 rounds of 2 local epochs
    [InlineData(10, 2, 0.1, 0, 20, 10, 2)] // the defaults up to session 41: 10 rounds of 2 local epochs
    [InlineData(200, 2, 0.1, 1, 20, 10, 2)] // one step per round: 200 steps of q = 0.1 are 20 passes, not 400 epochs
    [InlineData(200, 7, 0.3, 1, 20, 10, 2)] // one step per round at the default q: 60 passes, but 200 one-step rounds count as 10
    [InlineData(60, 2, 0.3, 1, 6, 3, 2)] // 60 one-step rounds count as 3 of 20 steps (18 passes)
    [InlineData(20, 2, 0.1, 5, 10, 5, 2)] // 5 of the 20 steps a round
    [InlineData(10, 1, 0.1, 0, 10, 5, 2)] // 1 local epoch of DP-SGD a round: 10 passes, in rounds of 2
    [InlineData(3, 2, 0.1, 1, 1, 1, 1)] // 0.3 passes: at least one epoch
    [InlineData(0, 2, 0.1, 0, 2, 1, 2)] // no round completed: one round's budget
    public void ComparisonBudget_TwoLocalEpochsARoundAtMostTheDpSgdsPasses(int completed, int localEpochs, double q, int stepsCap, int epochs, int noDpRounds, int noDpEpochs) =>
        Assert.Equal((epochs, noDpRounds, noDpEpochs), DemoRunner.ComparisonBudget(completed, localEpochs, q, stepsCap));

    [Fact]
    public void SplitNoiseUpdateClip_DemoRecipeOnNcbiDisease_JustAboveTheMeasuredStepNorm()
    {
        // lr 8, σ/√k = 1.195/√2, C = 1, the demo's tiny model (45,075 parameters), q = 0.1, 1,808 sentences per site:
        // measured |Δ| 8.0–8.1 in every round (docs/utility.md "Session 8").
        double s = DemoRunner.SplitNoiseUpdateClip(8, 1.195 / Math.Sqrt(2), 1, 45_075, 0.1, 1_808);

        Assert.Equal(13.2, s, 9);
        Assert.True(DemoRunner.SplitNoiseUpdateClip(8, 1.195 / Math.Sqrt(2), 1, 45_075, 0.1, 180) > 2 * s, "ten times fewer sentences: a much noisier step");
    }

    [Fact]
    public async Task Demo_ServerAdam_AggregatorRunsItAuditsItAndStoresTheMoments()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["demo", "--corpus", "synthetic", "--out", _dir, "--rounds", "2", "--sentences", "60", "--local-epochs", "1", "--no-comparison",
             "--server-optimizer", "adam", "--server-lr", "0.02", "--server-tau", "1e-7"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(8));

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        string output = Plain(stdout.ToString());
        Assert.Contains("Aggregator update rule: adam on the averaged update", output, StringComparison.Ordinal);
        Assert.Contains("τ 1E-07", output, StringComparison.Ordinal);
        string audit = File.ReadAllText(Path.Combine(_dir, "aggregator-data", "audit", AuditLog.LogFileName));
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Count(audit, "\"server_update\":\\{[^}]*\"rule\":\"adam\""));
        using var store = SecureFed.Aggregator.Persistence.AggregatorStore.Open(Path.Combine(_dir, "aggregator-data", "aggregator.db"));
        SecureFed.Aggregator.Persistence.SavedServerOptimizer saved = store.LoadServerOptimizer()!;
        Assert.Equal(2, saved.ModelVersion);
        Assert.Equal(2, saved.Steps);
        Assert.Equal("adam", saved.Kind);
    }

    [Theory]
    [InlineData("--server-optimizer", "sgd", "--server-optimizer: The server optimizer must be avg, momentum or adam, not 'sgd'.")]
    [InlineData("--server-tau", "0", "--server-tau: the server τ (adaptivity) must be a positive number, not 0.")]
    public async Task Demo_ServerRuleBadUsage_RefusedNamingTheOption(string option, string value, string message)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["demo", "--out", _dir, option, value], stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.NotEqual(0, code);
        Assert.Contains(message, stderr.ToString() + stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "agents")));
    }

    [Theory]
    [InlineData("--patient-noise", "global", "--patient-noise must be local or distributed, got 'global'.")]
    [InlineData("--optimizer", "adam", "--patient-noise distributed needs --optimizer sgd")]
    public async Task Demo_DistributedPatientNoiseBadUsage_RefusedNamingTheOption(string option, string value, string message)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        string[] args = option == "--patient-noise"
            ? ["demo", "--out", _dir, "--patient-noise", value]
            : ["demo", "--out", _dir, "--patient-noise", "distributed", option, value];

        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));

        Assert.NotEqual(0, code);
        Assert.Contains(message, stderr.ToString() + stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "agents")));
    }

    [Theory]
    [InlineData(60)]
    [InlineData(80)]
    [InlineData(100)]
    [InlineData(120)]
    [InlineData(200)]
    public void RoundTable_ThreeOrTwentySites_FitsTheWidthWithOneLinePerRound(int width)
    {
        foreach (int siteCount in new[] { 3, 20 })
        {
            string[] sites = DemoRunner.SiteNames(siteCount);
            var bytes = sites.ToDictionary(s => s, _ => 181_150L);
            var partial = sites.ToDictionary(s => s, s => s == sites[^1] ? 120_000L : 181_150L);
            DemoRound[] rounds =
            [
                new(1, "completed", sites, 0.512, 2.31, 91_778.445, bytes),
                new(2, "completed", sites[..^1], 0.634, 4.02, 183_556.9, partial),
                new(3, "aborted: only 1 of 3 sites delivered masked inputs, fewer than the threshold t = 2", [], double.NaN, 5.5, 183_556.9, partial),
            ];
            using var writer = new StringWriter();
            var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings { Out = new Spectre.Console.AnsiConsoleOutput(writer), Ansi = Spectre.Console.AnsiSupport.No });
            console.Profile.Width = width;

            console.Write(DemoRunner.RoundTable(rounds, sites, width));

            string[] lines = writer.ToString().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();
            Assert.All(lines, l => Assert.True(l.Length <= width, $"{l.Length} > {width}: {l}"));
            // Title, top border, header, separator, three rows, bottom border: no row is wrapped onto a second line.
            if (width < 80)
            {
                continue; // narrower than any usual terminal: it must fit, rows may wrap
            }

            Assert.True(lines.Length == 8, $"{lines.Length} lines at {width} columns:\n{writer}");
            Assert.Contains(lines, l => l.Contains($"all {siteCount}", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.Contains($"all but {sites[^1].Replace("site-", "", StringComparison.Ordinal)}", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Locate_FromTheTestBinaries_FindsTheShippedCorpus()
    {
        string? dir = DemoCorpus.Locate(out IReadOnlyList<string> searched);

        Assert.True(dir is not null, "searched: " + string.Join(", ", searched));
        Assert.True(File.Exists(Path.Combine(dir, "LICENSE")));
        Assert.True(File.Exists(Path.Combine(dir, "README.md")));
        Assert.Equal(5424, ConllSentenceCount(Path.Combine(dir, "train.tsv")));
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    /// <summary>The text without ANSI colour codes (what the reader sees).</summary>
    private static string Plain(string text) => Regex.Replace(text, "\u001b\\[[0-9;]*[A-Za-z]", "");

    private static int ConllSentenceCount(string path) => SecureFed.Tagger.ConllReader.ReadFile(path).Count();
}
