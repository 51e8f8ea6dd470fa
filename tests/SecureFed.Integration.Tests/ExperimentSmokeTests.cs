using System.Text.Json;
using SecureFed.Cli;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary><c>securefed experiment</c> end to end on a small synthetic CoNLL corpus (tiny model, a few hundred sentences).</summary>
public sealed class ExperimentSmokeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-experiment-smoke-").FullName;

    [Fact]
    public async Task Experiment_TinyIidThreeSitesTwoSeeds_PrintsTableJsonLineAndWritesResultsAndChart()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 150, eval: 60);
        string output = Path.Combine(_dir, "out");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["experiment", "--data", corpus, "--sites", "3", "--split", "iid", "--epsilon", "8", "--seeds", "2", "--config", "tiny",
             "--rounds", "2", "--local-epochs", "1", "--sample-rate", "0.2", "--out", output, "--json"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        string[] lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        using JsonDocument summary = JsonDocument.Parse(lines[^1]);
        JsonElement root = summary.RootElement;
        AssertF1(root.GetProperty("pooled_f1"));
        AssertF1(root.GetProperty("federated_f1"));
        Assert.Equal(3, root.GetProperty("site_alone_f1").GetArrayLength());
        foreach (JsonElement f1 in root.GetProperty("site_alone_f1").EnumerateArray())
        {
            AssertF1(f1);
        }

        JsonElement dp = Assert.Single(root.GetProperty("dp").EnumerateArray());
        Assert.Equal(8.0, dp.GetProperty("epsilon").GetDouble());
        AssertF1(dp.GetProperty("f1"));
        Assert.Equal("local", dp.GetProperty("noise").GetString());
        Assert.Equal(JsonValueKind.Null, dp.GetProperty("collusion_epsilon").ValueKind);
        Assert.Equal(2, root.GetProperty("seeds").GetInt32());

        // The table names every arm; progress went to stderr.
        string table = stdout.ToString();
        foreach (string arm in new[] { "site-1 alone", "site-3 alone", "pooled (centralized)", "federated (secure aggregation)", "federated + DP-SGD ε=8" })
        {
            Assert.Contains(arm, table, StringComparison.Ordinal);
        }

        Assert.Contains("round 2/2", stderr.ToString(), StringComparison.Ordinal);

        // results.json: every arm for both seeds, a dev F1 per round, the accountant's ε within the target.
        using JsonDocument results = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "results.json")));
        JsonElement[] runs = [.. results.RootElement.GetProperty("runs").EnumerateArray()];
        Assert.Equal(2 * 6, runs.Length);
        Assert.All(runs, r => Assert.Equal(2, r.GetProperty("dev_f1_per_round").GetArrayLength()));
        JsonElement[] dpRuns = [.. runs.Where(r => r.GetProperty("kind").GetString() == "federated_dp")];
        Assert.Equal(2, dpRuns.Length);
        Assert.All(dpRuns, r => Assert.InRange(r.GetProperty("epsilon_spent").GetDouble(), 0.1, 8.0));

        // Federated evaluation: each federated run records the F1 of the model each round started from, summed
        // securely from the sites' dev shards; the shards partition the dev set, so round 2's score is the pooled dev
        // F1 after round 1. Other arms have none.
        foreach (JsonElement run in runs)
        {
            JsonElement federatedEval = run.GetProperty("federated_evaluation_f1_per_round");
            if (!run.GetProperty("kind").GetString()!.StartsWith("federated", StringComparison.Ordinal))
            {
                Assert.Equal(JsonValueKind.Null, federatedEval.ValueKind);
                continue;
            }

            Assert.Equal(2, federatedEval.GetArrayLength());
            AssertF1(federatedEval[0]);
            Assert.Equal(run.GetProperty("dev_f1_per_round")[0].GetDouble(), federatedEval[1].GetDouble(), 9);
        }
        byte[] png = await File.ReadAllBytesAsync(Path.Combine(output, "f1-per-round.png"));
        Assert.True(png.Length > 1000);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
    }

    [Fact]
    public async Task Experiment_ByCorpusWithOneCorpus_ExitsWithUsageErrorNamingTheOption()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 10, eval: 5);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["experiment", "--split", "by-corpus", "--corpora", corpus, "--out", Path.Combine(_dir, "out")],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, code);
        Assert.Contains("--corpora", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Experiment_DistributedNoise_SplitsSigmaAcrossSitesAndReportsTheCollusionEpsilon()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "dist"), train: 90, eval: 30);
        string output = Path.Combine(_dir, "dist-out");

        (int code, string stdout, string stderr) = await Cli(TimeSpan.FromMinutes(5),
            "experiment", "--data", corpus, "--sites", "3", "--dp-only", "--epsilon", "8", "--seeds", "1", "--rounds", "3",
            "--dp-steps", "1", "--dp-noise", "distributed", "--sample-rate", "0.3", "--dp-optimizer", "sgd", "--dp-lr", "1",
            "--out", output, "--json");

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        using JsonDocument results = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "results.json")));
        JsonElement run = Assert.Single(results.RootElement.GetProperty("runs").EnumerateArray(), r => r.GetProperty("kind").GetString() == "federated_distributed_dp");
        Assert.True(run.GetProperty("distributed_noise").GetBoolean());
        Assert.Equal(3, run.GetProperty("dp_steps_per_site").GetInt64());
        // The sum carries the σ calibrated for ε = 8; each site's share alone (σ / √3) gives a larger ε.
        double sigma = run.GetProperty("noise_multiplier").GetDouble();
        Assert.Equal(Privacy.NoiseCalibration.NoiseMultiplierFor(8, 1e-5, 0.3, 3), sigma, 9);
        Assert.InRange(run.GetProperty("epsilon_spent").GetDouble(), 7.0, 8.0);
        var accountant = new Privacy.RdpAccountant();
        accountant.AddSubsampledGaussian(0.3, sigma / Math.Sqrt(3), 3);
        double collusion = run.GetProperty("collusion_epsilon").GetDouble();
        Assert.Equal(accountant.GetPrivacySpent(1e-5).Epsilon, collusion, 9);
        Assert.True(collusion > 8, $"collusion ε {collusion} must exceed the sum's ε");
        Assert.Contains("(0.", stderr.Split('\n').Single(l => l.Contains("distributed DP-SGD ε=8: σ=", StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.Contains("ε if the aggregator and every other site collude: ", stdout, StringComparison.Ordinal);
        string[] lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        using JsonDocument summary = JsonDocument.Parse(lines[^1]);
        JsonElement dp = Assert.Single(summary.RootElement.GetProperty("dp").EnumerateArray());
        Assert.Equal(8.0, dp.GetProperty("epsilon").GetDouble());
        Assert.Equal("distributed", dp.GetProperty("noise").GetString());
        Assert.Equal(collusion, dp.GetProperty("collusion_epsilon").GetDouble(), 9);
        AssertF1(dp.GetProperty("f1"));
    }

    [Fact]
    public async Task Experiment_DistributedNoiseInTwoShares_EachSiteAddsSigmaOverRootTwoCollusionEpsilonFromThatShare()
    {
        // The product's split for 3 sites at the default threshold t = 2: each site adds σ/√2, so any 2 sites' sum carries σ.
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "dist2"), train: 60, eval: 20);
        string output = Path.Combine(_dir, "dist2-out");

        (int code, string stdout, string stderr) = await Cli(TimeSpan.FromMinutes(5),
            "experiment", "--data", corpus, "--sites", "3", "--dp-only", "--epsilon", "8", "--seeds", "1", "--rounds", "2",
            "--dp-steps", "1", "--dp-noise", "distributed", "--dp-noise-shares", "2", "--sample-rate", "0.3", "--out", output);

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        using JsonDocument results = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "results.json")));
        Assert.Equal(2, results.RootElement.GetProperty("configuration").GetProperty("dp_noise_shares").GetInt32());
        JsonElement run = Assert.Single(results.RootElement.GetProperty("runs").EnumerateArray(), r => r.GetProperty("kind").GetString() == "federated_distributed_dp");
        double sigma = run.GetProperty("noise_multiplier").GetDouble();
        Assert.Equal(Privacy.NoiseCalibration.NoiseMultiplierFor(8, 1e-5, 0.3, 2), sigma, 9);
        var accountant = new Privacy.RdpAccountant();
        accountant.AddSubsampledGaussian(0.3, sigma / Math.Sqrt(2), 2);
        Assert.Equal(accountant.GetPrivacySpent(1e-5).Epsilon, run.GetProperty("collusion_epsilon").GetDouble(), 9);
        string line = stderr.Split('\n').Single(l => l.Contains("distributed DP-SGD ε=8: σ=", StringComparison.Ordinal));
        Assert.Contains("in any 2 sites' sum (" + (sigma / Math.Sqrt(2)).ToString("F3", System.Globalization.CultureInfo.InvariantCulture) + " per site)", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("local", "4", "needs --dp-noise distributed")]
    [InlineData("distributed", "4", "from 2 to the 3 sites")]
    [InlineData("distributed", "1", "from 2 to the 3 sites")]
    public async Task Experiment_DpNoiseSharesOutOfRange_RefusedNamingTheOption(string noise, string shares, string fragment)
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "shares-bad"), train: 30, eval: 10);

        (int code, _, string stderr) = await Cli(TimeSpan.FromSeconds(60),
            "experiment", "--data", corpus, "--sites", "3", "--epsilon", "8", "--dp-noise", noise, "--dp-steps", "1", "--dp-noise-shares", shares,
            "--out", Path.Combine(_dir, "shares-bad-out"));

        Assert.Equal(2, code);
        Assert.Contains("--dp-noise-shares", stderr, StringComparison.Ordinal);
        Assert.Contains(fragment, stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "shares-bad-out")));
    }

    [Fact]
    public async Task Experiment_DistributedNoiseWithSeveralLocalSteps_RefusedNamingDpSteps()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "dist-bad"), train: 30, eval: 10);

        (int code, _, string stderr) = await Cli(TimeSpan.FromSeconds(60),
            "experiment", "--data", corpus, "--epsilon", "8", "--dp-noise", "distributed", "--dp-steps", "5", "--out", Path.Combine(_dir, "dist-bad-out"));

        Assert.Equal(2, code);
        Assert.Contains("--dp-steps 1", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "dist-bad-out")));
    }

    [Fact]
    public async Task Experiment_AdaptiveClip_MovesTheClipFromTheNoisedCountAndRaisesTheGradientNoise()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "adaptive"), train: 90, eval: 30);
        string output = Path.Combine(_dir, "adaptive-out");

        (int code, string stdout, string stderr) = await Cli(TimeSpan.FromMinutes(5),
            "experiment", "--data", corpus, "--sites", "3", "--dp-only", "--epsilon", "8", "--seeds", "1", "--rounds", "3",
            "--dp-steps", "1", "--dp-noise", "distributed", "--sample-rate", "0.3", "--dp-optimizer", "sgd", "--dp-lr", "1",
            "--grad-clip", "0.5", "--adaptive-clip", "0.5", "--clip-lr", "0.3",
            "--server-optimizer", "adam", "--server-noise-correction", "--server-lr", "0.01", "--out", output, "--json");

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        using JsonDocument results = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "results.json")));
        JsonElement run = Assert.Single(results.RootElement.GetProperty("runs").EnumerateArray(), r => r.GetProperty("kind").GetString() == "federated_distributed_dp");
        double sigma = run.GetProperty("noise_multiplier").GetDouble();
        Assert.Equal(Privacy.NoiseCalibration.NoiseMultiplierFor(8, 1e-5, 0.3, 3), sigma, 9);
        Assert.InRange(run.GetProperty("epsilon_spent").GetDouble(), 7.0, 8.0);
        // σ_b defaults to the expected batch size over the sites / 20; σ_Δ makes the pair σ.
        int train = ConllReader.ReadFile(Path.Combine(corpus, "train.tsv")).Count(x => x.Length > 0);
        double countNoise = run.GetProperty("clip_count_noise").GetDouble();
        Assert.Equal(0.3 * train / 20, countNoise, 9);
        Assert.Equal(Privacy.AdaptiveClipping.GradientNoiseMultiplier(sigma, countNoise), run.GetProperty("gradient_noise_multiplier").GetDouble(), 12);
        Assert.True(run.GetProperty("gradient_noise_multiplier").GetDouble() > sigma);
        // C starts at --grad-clip and follows C ← C exp(−η_C (b̃ − γ)) with the released b̃.
        double[] clips = [.. run.GetProperty("clip_per_round").EnumerateArray().Select(e => e.GetDouble())];
        double[] fractions = [.. run.GetProperty("unclipped_fraction_per_round").EnumerateArray().Select(e => e.GetDouble())];
        Assert.Equal(3, clips.Length);
        Assert.Equal(3, fractions.Length);
        Assert.Equal(0.5, clips[0]);
        for (int r = 1; r < clips.Length; r++)
        {
            Assert.Equal(clips[r - 1] * Math.Exp(-0.3 * (fractions[r - 1] - 0.5)), clips[r], 12);
        }

        Assert.Contains("adaptive clipping to the unclipped fraction γ = 0.5", stderr, StringComparison.Ordinal);
        Assert.Contains("noised unclipped fraction", stderr, StringComparison.Ordinal);
        Assert.Contains("\"adaptive_clip\": 0.5", await File.ReadAllTextAsync(Path.Combine(output, "results.json")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--dp-steps 5 --adaptive-clip 0.5", "--dp-steps 1")]
    [InlineData("--dp-steps 1 --adaptive-clip 1.5", "--adaptive-clip must be")]
    [InlineData("--dp-steps 1 --clip-lr 0.5", "refine --adaptive-clip")]
    [InlineData("--dp-steps 1 --adaptive-clip 0.5 --clip-lr 0", "--clip-lr must be")]
    [InlineData("--dp-steps 1 --adaptive-clip 0.5 --clip-count-noise -1", "--clip-count-noise must be")]
    public async Task Experiment_AdaptiveClipOutOfPlace_RefusedNamingTheOption(string options, string named)
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "adaptive-bad"), train: 30, eval: 10);

        (int code, _, string stderr) = await Cli(TimeSpan.FromSeconds(60),
            ["experiment", "--data", corpus, "--epsilon", "8", .. options.Split(' '), "--out", Path.Combine(_dir, "adaptive-bad-out")]);

        Assert.Equal(2, code);
        Assert.Contains(named, stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "adaptive-bad-out")));
    }

    [Fact]
    public async Task Experiment_AdaptiveClipCountNoiseAtMostHalfSigma_RefusedNamingClipCountNoise()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "adaptive-sigma"), train: 30, eval: 10);

        (int code, _, string stderr) = await Cli(TimeSpan.FromMinutes(2),
            "experiment", "--data", corpus, "--sites", "3", "--dp-only", "--epsilon", "8", "--seeds", "1", "--rounds", "1",
            "--dp-steps", "1", "--sample-rate", "0.3", "--adaptive-clip", "0.5", "--clip-count-noise", "0.01", "--out", Path.Combine(_dir, "adaptive-sigma-out"));

        Assert.Equal(1, code);
        Assert.Contains("--clip-count-noise σ_b = 0.01 must exceed σ/2", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Experiment_PooledOnly_OnlyThePooledArmInTheJsonSummary()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "pooled"), train: 30, eval: 10);

        (int code, string stdout, string stderr) = await Cli(TimeSpan.FromMinutes(2),
            "experiment", "--data", corpus, "--epsilon", "none", "--pooled-only", "--seeds", "1", "--rounds", "2", "--config", "tiny", "--out", Path.Combine(_dir, "pooled-out"), "--json");

        Assert.True(code == 0, stderr);
        using JsonDocument summary = JsonDocument.Parse(stdout.TrimEnd().Split('\n')[^1]);
        AssertF1(summary.RootElement.GetProperty("pooled_f1"));
        Assert.Equal(JsonValueKind.Null, summary.RootElement.GetProperty("federated_f1").ValueKind);
        Assert.Empty(summary.RootElement.GetProperty("site_alone_f1").EnumerateArray());
        Assert.Empty(summary.RootElement.GetProperty("dp").EnumerateArray());
        using JsonDocument results = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(_dir, "pooled-out", "results.json")));
        Assert.True(results.RootElement.GetProperty("complete").GetBoolean());
    }

    [Fact]
    public void Run_StoppedAfterItsFirstArm_LeavesResultsThatSayTheyAreIncomplete()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "stopped"), train: 30, eval: 10);
        string output = Path.Combine(_dir, "stopped-out");
        using var stop = new CancellationTokenSource();
        var runner = new SecureFed.Experiments.ExperimentRunner(
            new SecureFed.Experiments.ExperimentOptions { DataDirectory = corpus, Sites = 3, Rounds = 1, ConfigName = "tiny", Epsilons = [], OutputDirectory = output },
            line =>
            {
                if (line.Contains("test F1", StringComparison.Ordinal))
                {
                    stop.Cancel(); // as Ctrl-C would, once the first arm (site-1 alone) is measured
                }
            });

        Assert.ThrowsAny<OperationCanceledException>(() => runner.Run(stop.Token));

        using JsonDocument results = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "results.json")));
        Assert.False(results.RootElement.GetProperty("complete").GetBoolean());
        Assert.StartsWith("incomplete: 1 arm runs measured so far", results.RootElement.GetProperty("status").GetString(), StringComparison.Ordinal);
        Assert.Single(results.RootElement.GetProperty("runs").EnumerateArray());
    }

    [Theory]
    [InlineData("--epsilon", "8")]
    [InlineData("--federated-only", null)]
    public async Task Experiment_PooledOnlyWithOtherArms_RefusedNamingPooledOnly(string option, string? value)
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "pooled-bad"), train: 10, eval: 5);
        string[] args = ["experiment", "--data", corpus, "--pooled-only", "--out", Path.Combine(_dir, "pooled-bad-out"), option, .. value is null ? Array.Empty<string>() : [value]];
        if (option != "--epsilon")
        {
            args = [.. args, "--epsilon", "none"];
        }

        (int code, _, string stderr) = await Cli(TimeSpan.FromSeconds(60), args);

        Assert.Equal(2, code);
        Assert.Contains("--pooled-only runs the pooled arm alone", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "pooled-bad-out")));
    }

    [Theory]
    [InlineData(new string[0], "product", 2, 0.01, "sgd", 2.0, 0.3, 2.0, true, 20)]
    [InlineData(new[] { "--recipe", "first-session" }, "first-session", 1, 0.003, "adam", 0.003, 0.02, 1.0, false, 50)]
    [InlineData(new[] { "--recipe", "first-session", "--grad-clip", "3", "--dp-no-dropout", "--lr", "0.02" }, "first-session", 1, 0.02, "adam", 0.003, 0.02, 3.0, true, 50)]
    [InlineData(new[] { "--dp-dropout", "--dp-lr", "0.25", "--local-epochs", "1" }, "product", 1, 0.01, "sgd", 0.25, 0.3, 2.0, false, 20)]
    [InlineData(new[] { "--sample-rate", "0.1", "--dp-steps", "0" }, "product", 2, 0.01, "sgd", 2.0, 0.1, 2.0, true, 20)] // the product's recipe up to session 41
    public async Task Experiment_Recipe_OptionsNotGivenComeFromTheRecipeAndAreRecorded(string[] options, string recipe, int localEpochs, double lr, string dpOptimizer, double dpLr, double q, double clip, bool noDropout, int dpSteps)
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "recipe"), train: 30, eval: 10);
        string output = Path.Combine(_dir, "recipe-out-" + Guid.NewGuid().ToString("N"));

        // The DP arm alone: with --epsilon none (the pooled arm alone, say) the DP-SGD options are refused as ignored.
        (int code, _, string stderr) = await Cli(TimeSpan.FromMinutes(2),
            ["experiment", "--data", corpus, "--epsilon", "8", "--dp-only", "--federated-only", "--seeds", "1", "--rounds", "1", "--config", "tiny", "--out", output, .. options]);

        Assert.True(code == 0, stderr);
        using JsonDocument results = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "results.json")));
        JsonElement configuration = results.RootElement.GetProperty("configuration");
        Assert.Equal(recipe, configuration.GetProperty("recipe").GetString());
        Assert.Equal(localEpochs, configuration.GetProperty("local_epochs").GetInt32());
        Assert.Equal(lr, configuration.GetProperty("lr").GetDouble());
        Assert.Equal(dpOptimizer, configuration.GetProperty("dp_optimizer").GetString());
        Assert.Equal(dpLr, configuration.GetProperty("dp_lr").GetDouble());
        Assert.Equal(q, configuration.GetProperty("sample_rate").GetDouble());
        Assert.Equal(clip, configuration.GetProperty("grad_clip").GetDouble());
        Assert.Equal(noDropout, configuration.GetProperty("dp_no_dropout").GetBoolean());
        Assert.Equal(dpSteps, configuration.GetProperty("dp_steps_per_round").GetInt32());
    }

    [Theory]
    [InlineData(new[] { "--dp-dropout", "--dp-no-dropout" }, "--dp-dropout and --dp-no-dropout")]
    [InlineData(new[] { "--recipe", "fast" }, "--recipe")]
    public async Task Experiment_BadRecipeOptions_RefusedNamingThem(string[] options, string named)
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "recipe-bad"), train: 10, eval: 5);
        string output = Path.Combine(_dir, "recipe-bad-out");

        (int code, _, string stderr) = await Cli(TimeSpan.FromSeconds(60), ["experiment", "--data", corpus, "--epsilon", "none", "--pooled-only", "--out", output, .. options]);

        Assert.Equal(2, code);
        Assert.Contains(named, stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public async Task Experiment_FolderWithoutTestFile_FailsNamingTheMissingFile()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 10, eval: 5);
        File.Delete(Path.Combine(corpus, "test.tsv"));
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["experiment", "--data", corpus, "--epsilon", "none", "--seeds", "1", "--rounds", "1", "--out", Path.Combine(_dir, "out")],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(CliApp.ExitUsage, code); // a file missing from the corpus folder the user named: a usage error (InputDataException)
        Assert.Contains("test.tsv", stderr.ToString(), StringComparison.Ordinal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static async Task<(int Code, string Stdout, string Stderr)> Cli(TimeSpan timeout, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(timeout);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static void AssertF1(JsonElement value) => Assert.InRange(value.GetDouble(), 0.0, 1.0);

    [Fact]
    public async Task Experiment_PublicWarmStartWithPreconditioner_EstimatedOnceThenLoadedFromTheCacheWithTheSameResult()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "sites"), train: 90, eval: 30);
        string publicCorpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "public"), train: 60, eval: 10);
        string cache = Path.Combine(_dir, "cache");

        async Task<(string Stderr, double F1)> Run(string output)
        {
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            int code = await CliApp.RunAsync(
                ["experiment", "--data", corpus, "--sites", "3", "--dp-only", "--epsilon", "8", "--seeds", "1", "--rounds", "1",
                 "--dp-steps", "2", "--sample-rate", "0.3", "--dp-optimizer", "sgd", "--dp-lr", "2", "--grad-clip", "1",
                 "--warm-start", publicCorpus, "--warm-start-epochs", "1", "--warm-start-cache", cache, "--dp-precondition",
                 "--out", Path.Combine(_dir, output), "--json"],
                stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));
            Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
            string[] lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            using JsonDocument summary = JsonDocument.Parse(lines[^1]);
            JsonElement dp = Assert.Single(summary.RootElement.GetProperty("dp").EnumerateArray());
            return (stderr.ToString(), dp.GetProperty("f1").GetDouble());
        }

        (string first, double firstF1) = await Run("out1");
        (string second, double secondF1) = await Run("out2");

        Assert.Contains("DP-SGD preconditioner estimated on the public corpus", first, StringComparison.Ordinal);
        Assert.Contains("of the sampled gradients clipped (median norm", first, StringComparison.Ordinal);
        Assert.Single(Directory.GetFiles(cache, "*-preconditioner-*.f32"));
        Assert.Contains("DP-SGD preconditioner loaded from", second, StringComparison.Ordinal);
        Assert.Equal(firstF1, secondF1);
        Assert.InRange(firstF1, 0.0, 1.0);
    }

    [Fact]
    public async Task Experiment_AllPublicSplitsSubspaceAndPld_EachIsUsedAndSaysSo()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "sites-all"), train: 90, eval: 30);
        string publicCorpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "public-all"), train: 60, eval: 10);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["experiment", "--data", corpus, "--sites", "3", "--dp-only", "--epsilon", "8", "--seeds", "1", "--rounds", "2",
             "--dp-steps", "2", "--sample-rate", "0.3", "--dp-optimizer", "sgd", "--dp-lr", "2", "--grad-clip", "1",
             "--warm-start", publicCorpus, "--warm-start-epochs", "1", "--warm-start-splits", "all",
             "--dp-subspace", "4", "--dp-subspace-sentences", "20", "--dp-subspace-refresh", "1", "--accountant", "pld",
             "--out", Path.Combine(_dir, "out-all"), "--json"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        string log = stderr.ToString();
        int publicSentences = new[] { "train.tsv", "dev.tsv", "test.tsv" }.Sum(f => ConllReader.ReadFile(Path.Combine(publicCorpus, f)).Count(x => x.Length > 0));
        Assert.Contains($"public warm start: {publicSentences} sentences", log, StringComparison.Ordinal);
        Assert.Contains("train.tsv + dev.tsv + test.tsv", log, StringComparison.Ordinal);
        Assert.Equal(2, log.Split("public gradient subspace: k = 4 of").Length - 1); // at the start and after round 1
        Assert.Contains("PLD accountant", log, StringComparison.Ordinal);
        string[] lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        using JsonDocument summary = JsonDocument.Parse(lines[^1]);
        JsonElement dp = Assert.Single(summary.RootElement.GetProperty("dp").EnumerateArray());
        Assert.InRange(dp.GetProperty("f1").GetDouble(), 0.0, 1.0);
    }
}
