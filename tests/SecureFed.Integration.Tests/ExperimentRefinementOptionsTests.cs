using SecureFed.Cli;
using SecureFed.Experiments;

namespace SecureFed.Integration.Tests;

/// <summary>
/// <c>securefed experiment</c> options that only refine another option, given without it: each was silently ignored (the
/// run went ahead without the feature the user tuned) and is now a usage error naming the option, its value and the option
/// that enables it, before any output folder is made.
/// </summary>
public sealed class ExperimentRefinementOptionsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-experiment-refinement-").FullName;

    [Theory]
    [InlineData("--warm-start-epochs 5", "--warm-start-epochs 5", "--warm-start DIR")]
    [InlineData("--warm-start-cache CACHE", "--warm-start-cache", "--warm-start DIR")]
    [InlineData("--warm-start-splits all", "--warm-start-splits all", "--warm-start DIR")]
    [InlineData("--dp-subspace-sentences 200", "--dp-subspace-sentences 200", "--dp-subspace K")]
    [InlineData("--dp-subspace-refresh 2", "--dp-subspace-refresh 2", "--dp-subspace K")]
    [InlineData("--dp-precondition-floor 0.2", "--dp-precondition-floor 0.2", "--dp-precondition is not given")]
    [InlineData("--public-mix-until 3", "--public-mix-until 3", "--public-mix WEIGHT")]
    [InlineData("--server-noise-floor 2", "--server-noise-floor 2", "--server-noise-correction, which is not given")]
    [InlineData("--server-beta1 0.5", "--server-beta1 0.5", "--server-optimizer is avg")]
    [InlineData("--server-optimizer momentum --server-beta2 0.9", "--server-beta2 0.9", "--server-optimizer is momentum")]
    [InlineData("--server-tau 0.01", "--server-tau 0.01", "give adam")]
    public async Task Experiment_RefinementWithoutTheOptionItRefines_RefusedNamingOptionValueAndEnabler(string options, string named, string enabler)
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 30, eval: 10);
        string output = Path.Combine(_dir, "out");
        string[] given = [.. options.Split(' ').Select(o => o == "CACHE" ? Path.Combine(_dir, "cache") : o)];
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["experiment", "--data", corpus, "--epsilon", "8", .. given, "--out", output], stdout, stderr, CancellationToken.None)
            .WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(code == 2, $"exit {code}\n{stderr}");
        Assert.Contains(named, stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains(enabler, stderr.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
        Assert.False(Directory.Exists(Path.Combine(_dir, "cache")));
    }

    /// <summary>
    /// A refinement given at its default value: Validate compared the value with the default instead of knowing what was
    /// given, so these passed silently while any other value was refused. --pooled-only with --epsilon 8 is refused by the
    /// last check of Validate: without the fix the command stops there at once (naming --pooled-only) instead of training.
    /// </summary>
    [Theory]
    [InlineData("--warm-start-epochs 3", "--warm-start-epochs 3", "--warm-start DIR")]
    [InlineData("--warm-start-splits train", "--warm-start-splits train", "--warm-start DIR")]
    [InlineData("--dp-subspace-sentences 1000", "--dp-subspace-sentences 1000", "--dp-subspace K")]
    [InlineData("--dp-subspace-refresh 0", "--dp-subspace-refresh 0", "--dp-subspace K")]
    [InlineData("--dp-precondition-floor 0.1", "--dp-precondition-floor 0.1", "--dp-precondition is not given")]
    [InlineData("--dp-precondition-split 1", "--dp-precondition-split", "refine --dp-precondition")]
    [InlineData("--public-mix-until 0", "--public-mix-until 0", "--public-mix WEIGHT")]
    [InlineData("--server-noise-floor 1", "--server-noise-floor 1", "--server-noise-correction, which is not given")]
    [InlineData("--server-beta1 0.9", "--server-beta1 0.9", "--server-optimizer is avg")]
    [InlineData("--server-beta2 0.99", "--server-beta2 0.99", "give adam")]
    [InlineData("--server-tau 0.001", "--server-tau 0.001", "give adam")]
    [InlineData("--clip-lr 0.2", "--clip-lr", "refine --adaptive-clip")]
    [InlineData("--pretrain-epochs 1", "--pretrain-epochs", "--pretrain-text")]
    [InlineData("--distill-epochs 3", "--distill-epochs", "--distill-text")]
    [InlineData("--distill-lr 0.003", "--distill-lr", "--distill-text")]
    public async Task Experiment_RefinementAtItsDefaultWithoutTheOptionItRefines_RefusedAsAnyOtherValue(string options, string named, string enabler)
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 30, eval: 10);
        string output = Path.Combine(_dir, "out");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["experiment", "--data", corpus, "--epsilon", "8", "--pooled-only", .. options.Split(' '), "--out", output], stdout, stderr, CancellationToken.None)
            .WaitAsync(TimeSpan.FromSeconds(60));

        Assert.True(code == 2, $"exit {code}\n{stderr}");
        Assert.Contains(named, stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains(enabler, stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("--pooled-only", stderr.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }

    /// <summary>
    /// An option that only matters for the DP arms, with --epsilon none (no DP arm): it was silently ignored, the run went
    /// ahead without what the user tuned. Refused naming the option and why, whatever its value (a recipe's default too).
    /// With --pooled-only (the pooled arm alone, where they were ignored too) so that a regression trains one arm only.
    /// </summary>
    [Theory]
    [InlineData("--grad-clip 3", "--grad-clip")]
    [InlineData("--grad-clip 2", "--grad-clip")]
    [InlineData("--sample-rate 0.1", "--sample-rate")]
    [InlineData("--dp-steps 1", "--dp-steps")]
    [InlineData("--dp-lr 0.5", "--dp-lr")]
    [InlineData("--dp-optimizer adam", "--dp-optimizer")]
    [InlineData("--dp-no-dropout", "--dp-no-dropout")]
    [InlineData("--dp-weight-decay 0.01", "--dp-weight-decay")]
    [InlineData("--dp-freeze-embeddings", "--dp-freeze-embeddings")]
    [InlineData("--accountant pld", "--accountant")]
    [InlineData("--dp-noise local", "--dp-noise")]
    [InlineData("--clip-count-noise 5", "--clip-count-noise")]
    [InlineData("--site-noise 0.5", "--site-noise")]
    [InlineData("--server-noise-correction --server-optimizer adam", "--server-noise-correction")]
    [InlineData("--dp-only", "--dp-only")]
    public async Task Experiment_DpOptionWithEpsilonNone_RefusedNamingTheOptionAndWhy(string options, string named)
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 30, eval: 10);
        string output = Path.Combine(_dir, "out");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["experiment", "--data", corpus, "--epsilon", "none", "--pooled-only", "--rounds", "1", "--seeds", "1", .. options.Split(' '), "--out", output], stdout, stderr, CancellationToken.None)
            .WaitAsync(TimeSpan.FromMinutes(3));

        Assert.True(code == 2, $"exit {code}\n{stderr}");
        Assert.Contains($"error: {named} only matters for the DP arms, but --epsilon none runs none: give --epsilon, or leave {named} out.", stderr.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void Validate_RefinementsWithTheOptionTheyRefine_Accepted()
    {
        var options = new ExperimentOptions
        {
            DataDirectory = "/nonexistent/ncbi",
            Rounds = 5,
            WarmStartDirectory = "/nonexistent/bc5cdr",
            WarmStartEpochs = 5,
            WarmStartCache = "/nonexistent/cache",
            WarmStartAllSplits = true,
            DpSubspace = 4,
            DpSubspaceSentences = 200,
            DpSubspaceRefresh = 2,
            DpPrecondition = true,
            DpPreconditionFloor = 0.2,
            PublicMix = 1,
            PublicMixUntil = 3,
            ServerOptimizerName = "adam",
            ServerNoiseCorrection = true,
            ServerNoiseFloor = 2,
            ServerBeta1 = 0.5,
            ServerBeta2 = 0.9,
            ServerTau = 0.01,
        };

        Assert.Null(Record.Exception(options.Validate));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
